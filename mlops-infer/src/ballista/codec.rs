//! Plans with [`WriteParts`] travelling between the processes of a cluster: Ballista's own
//! codecs, with the write node encoded beside them.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::catalog::TableProvider;
use deltalake::datafusion::common::{Result as DfResult, TableReference, internal_err};
use deltalake::datafusion::datasource::file_format::FileFormatFactory;
use deltalake::datafusion::execution::TaskContext;
use deltalake::datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use deltalake::datafusion::physical_plan::ExecutionPlan;

use super::write_parts::{PartTarget, WriteParts, WritePartsExec};

/// Marks an encoded write node: Ballista's nodes are protobuf messages, which never start so.
const MAGIC: &[u8] = b"mlops.write_parts/1\n";

fn encode(target: &PartTarget, buf: &mut Vec<u8>) -> DfResult<()> {
    buf.extend_from_slice(MAGIC);
    serde_json::to_writer(buf, target).map_err(|e| deltalake::datafusion::error::DataFusionError::External(Box::new(e)))
}

/// The target of an encoded write node, or `None` for any other node.
fn decode(buf: &[u8]) -> Option<DfResult<PartTarget>> {
    let body = buf.strip_prefix(MAGIC)?;
    Some(serde_json::from_slice(body).map_err(|e| deltalake::datafusion::error::DataFusionError::External(Box::new(e))))
}

/// The function encodings both codecs leave to Ballista's (which names functions, for the
/// receiving process to resolve in its registry).
macro_rules! delegate_function_codecs {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
            self.ballista.try_decode_udf(name, buf)
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
            self.ballista.try_encode_udf(node, buf)
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
            self.ballista.try_decode_udaf(name, buf)
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> DfResult<()> {
            self.ballista.try_encode_udaf(node, buf)
        }

        fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<WindowUDF>> {
            self.ballista.try_decode_udwf(name, buf)
        }

        fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> DfResult<()> {
            self.ballista.try_encode_udwf(node, buf)
        }
    };
}

/// Ballista's logical codec, also encoding [`WriteParts`].
#[derive(Debug, Default)]
pub(crate) struct LogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DfResult<Extension> {
        let Some(target) = decode(buf) else { return self.ballista.try_decode(buf, inputs, ctx) };
        let [input] = inputs else { return internal_err!("{} takes one input", WriteParts::NAME) };
        Ok(Extension { node: Arc::new(WriteParts::new(input.clone(), target?)?) })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        match node.node.as_any().downcast_ref::<WriteParts>() {
            Some(write) => encode(write.target(), buf),
            None => self.ballista.try_encode(node, buf),
        }
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        self.ballista.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> DfResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    delegate_function_codecs!();
}

/// Ballista's physical codec, also encoding [`WritePartsExec`].
#[derive(Debug, Default)]
pub(crate) struct PhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some(target) = decode(buf) else { return self.ballista.try_decode(buf, inputs, ctx, proto_converter) };
        let [input] = inputs else { return internal_err!("WritePartsExec takes one input") };
        Ok(Arc::new(WritePartsExec::new(Arc::clone(input), target?)))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        match node.downcast_ref::<WritePartsExec>() {
            Some(write) => encode(write.target(), buf),
            None => self.ballista.try_encode(node, buf, proto_converter),
        }
    }

    delegate_function_codecs!();
}
