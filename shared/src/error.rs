//! TODO(shared-core helper): error
