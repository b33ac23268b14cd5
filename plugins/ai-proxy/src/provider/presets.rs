//! OpenAI-compatible presets: `type: deepseek` gives DeepSeek's host, base path and auth.
//!
//! Hosts and base paths are the vendors' documented OpenAI-compatible endpoints. Self-hosted
//! servers (vllm, ollama, sglang, lmstudio, openai-compatible) have no default authority: the
//! Envoy cluster decides where the bytes go and the client's `:authority` is kept unless
//! `authority` is configured.

/// Which OpenAI APIs a preset offers besides chat completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Apis {
    /// `/v1/completions`.
    pub completions: bool,
    /// `/v1/embeddings`.
    pub embeddings: bool,
    /// `/v1/audio/*`.
    pub audio: bool,
    /// `/v1/images/*`.
    pub images: bool,
}

const ALL: Apis = Apis {
    completions: true,
    embeddings: true,
    audio: true,
    images: true,
};
const CHAT_EMB: Apis = Apis {
    completions: false,
    embeddings: true,
    audio: false,
    images: false,
};
const CHAT_ONLY: Apis = Apis {
    completions: false,
    embeddings: false,
    audio: false,
    images: false,
};
const SELF_HOSTED: Apis = Apis {
    completions: true,
    embeddings: true,
    audio: true,
    images: false,
};

/// One preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The `type` name.
    pub name: &'static str,
    /// Default `:authority`.
    pub authority: Option<&'static str>,
    /// Default base path (the part before `/chat/completions`).
    pub base_path: &'static str,
    /// APIs offered.
    pub apis: Apis,
}

const fn p(name: &'static str, host: &'static str, base: &'static str, apis: Apis) -> Preset {
    Preset {
        name,
        authority: Some(host),
        base_path: base,
        apis,
    }
}

const fn local(name: &'static str, apis: Apis) -> Preset {
    Preset {
        name,
        authority: None,
        base_path: "/v1",
        apis,
    }
}

/// The table.
pub const PRESETS: &[Preset] = &[
    p("openai", "api.openai.com", "/v1", ALL),
    local("openai-compatible", ALL),
    local("vllm", SELF_HOSTED),
    local("sglang", SELF_HOSTED),
    local("ollama", CHAT_EMB),
    local("lmstudio", CHAT_EMB),
    p("deepseek", "api.deepseek.com", "/v1", CHAT_ONLY),
    p(
        "qwen",
        "dashscope.aliyuncs.com",
        "/compatible-mode/v1",
        CHAT_EMB,
    ),
    p("mistral", "api.mistral.ai", "/v1", CHAT_EMB),
    p(
        "groq",
        "api.groq.com",
        "/openai/v1",
        Apis {
            audio: true,
            ..CHAT_ONLY
        },
    ),
    p(
        "together",
        "api.together.xyz",
        "/v1",
        Apis {
            images: true,
            completions: true,
            ..CHAT_EMB
        },
    ),
    p("openrouter", "openrouter.ai", "/api/v1", CHAT_ONLY),
    p("moonshot", "api.moonshot.cn", "/v1", CHAT_ONLY),
    p("zhipu", "open.bigmodel.cn", "/api/paas/v4", CHAT_EMB),
    p(
        "fireworks",
        "api.fireworks.ai",
        "/inference/v1",
        Apis {
            completions: true,
            ..CHAT_EMB
        },
    ),
    p(
        "xai",
        "api.x.ai",
        "/v1",
        Apis {
            images: true,
            ..CHAT_ONLY
        },
    ),
    p("perplexity", "api.perplexity.ai", "", CHAT_ONLY),
    p(
        "gemini-openai",
        "generativelanguage.googleapis.com",
        "/v1beta/openai",
        CHAT_EMB,
    ),
];

/// The preset of a type name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// All preset names.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}
