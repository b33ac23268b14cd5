//! aigw-harness (in progress)
