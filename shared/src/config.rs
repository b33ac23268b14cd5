//! TODO(shared-core helper): config
