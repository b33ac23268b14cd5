//! plugin (in progress)
