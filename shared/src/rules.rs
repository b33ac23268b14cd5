//! TODO(shared-core helper): rules
