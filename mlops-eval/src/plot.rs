//! What every SVG plot shares: size, colours, caption, legend, errors.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};

pub(crate) const COLORS: [RGBColor; 4] =
    [RGBColor(66, 110, 180), RGBColor(230, 140, 40), RGBColor(80, 160, 90), RGBColor(170, 70, 150)];

pub(crate) fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Report { path: path.display().to_string(), reason: e.to_string() }
}

pub(crate) type Canvas<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

pub(crate) fn canvas(path: &Path) -> Result<Canvas<'_>> {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    Ok(root)
}

/// The caption and margins every plot shares.
pub(crate) fn layout<'a, 'b>(root: &'a Canvas<'b>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(50);
    builder
}

/// Draws the legend and writes the file.
pub(crate) fn finish<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    root: &Canvas<'a>,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))
}
