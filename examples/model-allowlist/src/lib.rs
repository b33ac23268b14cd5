//! The plugin contract's worked example (see `shared/README.md`): chat requests may name only
//! models that a model service lists at `GET /v1/models`. The worker keeps the list in its
//! [`State`], refreshes it on a tick by a root-level callout, and a request that arrives before
//! the first list holds its whole body while it fetches the list itself. Unlisted models get a
//! 404 in the caller's protocol. Not a shipped plugin: built for the tests of every layer.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use aigw_shared::callout::{CalloutRequest, Upstream};
use aigw_shared::config::{from_value, ConfigError};
use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, LogLevel};
use aigw_shared::llm::Api;
use aigw_shared::plugin::{
    Ctx, FilterEnv, HttpFilter, Next, Plugin, PluginConfig, Reply, WholeBody,
};

/// `{"modelsCluster": "llm-sim", "refreshSeconds": 10}`
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    models_cluster: String,
    #[serde(default = "ten")]
    refresh_seconds: u64,
}

fn ten() -> u64 {
    10
}

/// The worker's list of model ids (`None` until the first answer).
#[derive(Debug, Default)]
pub struct State {
    models: RefCell<Option<BTreeSet<String>>>,
}

impl State {
    /// Whether `model` is listed (`None`: no list yet).
    pub fn allows(&self, model: &str) -> Option<bool> {
        self.models.borrow().as_ref().map(|m| m.contains(model))
    }

    /// Keep the ids of a `GET /v1/models` answer; false when it is unusable.
    fn learn(&self, reply: &Reply) -> bool {
        #[derive(serde::Deserialize)]
        struct List {
            data: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            id: String,
        }
        let list = reply
            .http()
            .filter(|r| r.status == Some(200))
            .and_then(|r| serde_json::from_slice::<List>(&r.body).ok());
        let Some(list) = list else { return false };
        *self.models.borrow_mut() = Some(list.data.into_iter().map(|e| e.id).collect());
        true
    }
}

fn list_models<C>(cx: &mut Ctx<'_, C>, cluster: &str, call: C, wait: bool) -> bool {
    let req = CalloutRequest {
        method: "GET",
        path: "/v1/models",
        headers: Vec::new(),
        body: None,
        timeout: Duration::from_secs(2),
    };
    let upstream = Upstream::envoy(cluster, cluster);
    let sent = if wait {
        cx.http_call(&upstream, &req, call)
    } else {
        cx.http_call_detached(&upstream, &req, call)
    };
    if let Err(e) = &sent {
        cx.log(
            LogLevel::Warn,
            &format!("model-allowlist: cannot list models: {e}"),
        );
    }
    sent.is_ok()
}

/// The plugin.
pub struct Allowlist;

impl Plugin for Allowlist {
    const NAME: &'static str = "model-allowlist";
    type Config = Config;
    type State = State;
    type RootCall = ();
    type Filter = Filter;

    fn build_config(value: &serde_json::Value) -> Result<Config, ConfigError> {
        from_value(value)
    }
    fn new_state(_: &PluginConfig<Self>, _: &FilterEnv) -> State {
        State::default()
    }
    fn new_filter(config: Rc<Config>, state: Rc<State>, _: &FilterEnv) -> Filter {
        Filter {
            config,
            state,
            model: String::new(),
            protocol: ClientProtocol::OpenAi,
        }
    }
    fn tick_period(config: &PluginConfig<Self>) -> Option<Duration> {
        Some(Duration::from_secs(config.global().refresh_seconds))
    }
    fn on_tick(config: &PluginConfig<Self>, _: &State, cx: &mut Ctx<'_, ()>) {
        list_models(cx, &config.global().models_cluster, (), false);
    }
    fn on_root_reply(
        _: &PluginConfig<Self>,
        state: &State,
        _: &mut Ctx<'_, ()>,
        _: (),
        reply: Reply,
    ) {
        state.learn(&reply);
    }
}

/// One request: whole body read, `model` checked against the worker's list.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    model: String,
    protocol: ClientProtocol,
}

impl Filter {
    fn refusal(&self) -> ClientError {
        let msg = format!("model {:?} is not offered here", self.model);
        ClientError::new(ErrorKind::NotFound, msg).with_param("model")
    }

    fn verdict(&self, allowed: bool) -> Next {
        if allowed {
            Next::Resume
        } else {
            Next::Fail(self.refusal())
        }
    }
}

impl HttpFilter for Filter {
    /// The only request-level callout: the list, fetched by a request that found none.
    type Call = ();

    fn protocol(&self) -> ClientProtocol {
        self.protocol
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, ()>, eos: bool) -> Action {
        let text = |name| {
            let value = cx.request_header(name).ok().flatten().unwrap_or_default();
            String::from_utf8(value).unwrap_or_default()
        };
        // The shared classifier: a query string or a trailing `/` is still chat.
        let api = Api::from_path(&text(":method"), &text(":path"));
        if !eos && matches!(api, Api::ChatCompletions | Api::AnthropicMessages) {
            self.protocol = api.protocol();
            cx.read_whole_request(WholeBody::up_to(1 << 20).holding_headers());
        }
        Action::Continue
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, ()>, body: &[u8]) -> Action {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            model: String,
        }
        self.model = serde_json::from_slice::<Body>(body)
            .map(|b| b.model)
            .unwrap_or_default();
        match self.state.allows(&self.model) {
            Some(true) => Action::Continue,
            None if list_models(cx, &self.config.models_cluster, (), true) => Action::Pause,
            known => {
                // A list that could not be fetched is a 503, as when its callout fails.
                let e = match known {
                    None => ClientError::new(ErrorKind::Overloaded, "model list unavailable"),
                    Some(_) => self.refusal(),
                };
                aigw_shared::reply::send_error(cx.host, Allowlist::NAME, self.protocol, &e);
                Action::Pause
            }
        }
    }

    fn on_reply(&mut self, _: &mut Ctx<'_, ()>, _: (), reply: Reply) -> Next {
        if !self.state.learn(&reply) {
            return Next::Fail(ClientError::new(
                ErrorKind::Overloaded,
                "model list unavailable",
            ));
        }
        self.verdict(self.state.allows(&self.model) == Some(true))
    }
}

aigw_shared::export_plugin!(Allowlist);
