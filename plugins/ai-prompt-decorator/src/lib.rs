//! ai-prompt-decorator (in progress)
