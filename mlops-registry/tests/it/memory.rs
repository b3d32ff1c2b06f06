use mlops_registry::MemoryRegistry;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_registry_keeps_the_contract() {
    mlops_registry::conformance::run_all(MemoryRegistry::new).await;
}
