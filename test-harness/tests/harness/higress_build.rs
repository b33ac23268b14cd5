//! The Higress build (`--features aigw-shared/higress`, put in `<wasm dir>/higress/` by `make build`):
//! it exports the ABI 0.2.100 marker, so under the Higress profile held request headers pass as
//! HeaderStopIteration and ai-proxy routes without any extra setting; the standard build, which
//! exports only 0.2.1, stalls there instead (Higress' cpp-host turns the Pause into StopAll).

use std::path::PathBuf;

use aigw_harness::{
    wasm_path, Chain, Env, PluginSpec, Profile, Request, UpstreamRequest, UpstreamResponse,
};

const CONFIG: &str = r#"{
  "providers": [{"name": "oai", "type": "openai", "cluster": "outbound|443||api.openai.com.dns", "apiKeys": ["sk-openai-test"]}],
  "defaultProvider": "oai"
}"#;

const REPLY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-5-nano","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;

fn higress_build(name: &str) -> PathBuf {
    crate::common::higress_wasm(name)
}

fn run(wasm: PathBuf) -> Result<(u16, Option<UpstreamRequest>), String> {
    let env = Env::new();
    let spec = PluginSpec::new(wasm)
        .config(CONFIG)
        .profile(Profile::Higress);
    let mut chain = Chain::new(&env).with(spec).map_err(|e| e.to_string())?;
    let req = Request::post_json(
        "/v1/chat/completions",
        r#"{"model":"gpt-5-nano","messages":[{"role":"user","content":"Hello"}]}"#,
    )
    .header("authorization", "Bearer client-key");
    let out = chain
        .run(&req, &mut |_: &UpstreamRequest| {
            UpstreamResponse::json(200, REPLY)
        })
        .map_err(|e| e.to_string())?;
    Ok((out.status, out.upstream))
}

#[test]
fn the_higress_build_routes_under_higress_without_extra_settings() {
    let (status, upstream) = run(higress_build("ai_proxy")).unwrap();
    assert_eq!(status, 200);
    let upstream = upstream.expect("the request reached the upstream");
    assert_eq!(
        upstream.header("authorization").as_deref(),
        Some("Bearer sk-openai-test")
    );
    assert_eq!(
        upstream.header(":authority").as_deref(),
        Some("api.openai.com")
    );
}

#[test]
fn the_standard_build_stalls_under_higress_because_it_lacks_the_marker() {
    let err = run(wasm_path("ai_proxy").unwrap()).unwrap_err();
    assert!(err.contains("stalled"), "{err}");
}

#[test]
fn every_plugin_has_a_higress_build_exporting_the_higress_marker() {
    let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut names: Vec<String> = std::fs::read_dir(plugins)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().replace('-', "_"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let bytes = std::fs::read(higress_build(name)).unwrap();
        let has = |m: &[u8]| bytes.windows(m.len()).any(|w| w == m);
        assert!(has(b"proxy_abi_version_0_2_100"), "{name}");
    }
}
