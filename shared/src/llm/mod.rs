//! LLM request view and response observer (placeholder).
