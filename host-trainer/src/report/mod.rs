//! The report: figures and pages that compare the three models.
//!
//! - [`page`]: the HTML and Markdown report.
//! - [`plots`]: the report's figures (plotters), each as PNG and SVG.
//! - [`projection`]: PCA and t-SNE maps to two dimensions, and the silhouette score.
//! - [`representations`]: each trained head's representations, mapped and scored.

pub mod page;
pub mod plots;
pub mod projection;
pub mod representations;
