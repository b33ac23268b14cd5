//! test guest (in progress)
