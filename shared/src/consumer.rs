//! TODO(shared-core helper): consumer
