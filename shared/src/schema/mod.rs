//! Client wire types (placeholder).
