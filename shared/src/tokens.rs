//! TODO(shared-core helper): tokens
