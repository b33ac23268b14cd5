//! callout (in progress)
