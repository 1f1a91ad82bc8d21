//! The Jinja chat template of a model (`tokenizer_config.json` / `chat_template.jinja`), rendered
//! with minijinja configured to behave like transformers' `apply_chat_template`.

use crate::{files, pyjson};
use anyhow::{anyhow, bail, Context, Result};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value as Json;
use std::path::Path;

/// One conversation turn.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template plus the special tokens it may reference.
#[derive(Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("source_len", &self.source.len())
            .finish()
    }
}

impl ChatTemplate {
    /// The template of the model in `dir`: `chat_template.jinja` if present (newer transformers
    /// save it there), else the `chat_template` field of `tokenizer_config.json` (a string, or a
    /// list of named templates of which `default` is used). Special tokens come from
    /// `tokenizer_config.json`. `Ok(None)` when the model has no chat template (base models).
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let cfg_path = dir.join(files::TOKENIZER_CONFIG);
        let cfg: Option<Json> = match std::fs::read_to_string(&cfg_path) {
            Ok(text) => Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", cfg_path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", cfg_path.display())),
        };
        let jinja_path = dir.join(files::CHAT_TEMPLATE_JINJA);
        let source =
            if jinja_path.is_file() {
                Some(
                    std::fs::read_to_string(&jinja_path)
                        .with_context(|| format!("reading {}", jinja_path.display()))?,
                )
            } else {
                match cfg.as_ref().and_then(|c| c.get("chat_template")) {
                    None | Some(Json::Null) => None,
                    Some(t) => Some(template_from_field(t).with_context(|| {
                        format!("field chat_template of {}", cfg_path.display())
                    })?),
                }
            };
        let Some(source) = source else {
            return Ok(None);
        };
        let token = |key: &str| -> Result<Option<String>> {
            match cfg.as_ref().and_then(|c| c.get(key)) {
                None => Ok(None),
                Some(v) => special_token(v)
                    .with_context(|| format!("field {key} of {}", cfg_path.display())),
            }
        };
        let (bos, eos) = (token("bos_token")?, token("eos_token")?);
        Self::from_str(&source, bos, eos)
            .with_context(|| format!("chat template of {}", dir.display()))
            .map(Some)
    }

    /// Compile `template`; `bos`/`eos` are exposed to it as `bos_token`/`eos_token` when given.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(template: &str, bos: Option<String>, eos: Option<String>) -> Result<Self> {
        let mut env = Environment::new();
        // transformers renders with jinja2's trim_blocks=True, lstrip_blocks=True.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Python string/dict methods (`.strip()`, `.startswith()`, `.items()`, ...) used by templates.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, template.to_string())
            .map_err(|e| anyhow!("compiling chat template: {}", describe(&e)))?;
        Ok(Self {
            source: template.to_string(),
            bos_token: bos,
            eos_token: eos,
            env,
        })
    }

    /// Render `messages`; with `add_generation_prompt` the assistant turn header is appended.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with(
            messages,
            add_generation_prompt,
            &Json::Object(Default::default()),
        )
    }

    /// Like [`render`](Self::render), with extra template variables (e.g. `date_string`, `tools`)
    /// given as a JSON object.
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: &Json,
    ) -> Result<String> {
        let mut ctx = match extra {
            Json::Object(m) => m.clone(),
            other => bail!("extra chat template variables must be a JSON object, got {other}"),
        };
        // transformers always passes these two, as None when absent; templates test `tools is none`.
        ctx.entry("tools").or_insert(Json::Null);
        ctx.entry("documents").or_insert(Json::Null);
        ctx.insert("messages".into(), serde_json::to_value(messages)?);
        ctx.insert(
            "add_generation_prompt".into(),
            Json::Bool(add_generation_prompt),
        );
        if let Some(b) = &self.bos_token {
            ctx.insert("bos_token".into(), Json::String(b.clone()));
        }
        if let Some(e) = &self.eos_token {
            ctx.insert("eos_token".into(), Json::String(e.clone()));
        }
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| anyhow!(describe(&e)))?;
        tmpl.render(Value::from_serialize(&ctx))
            .map_err(|e| anyhow!("rendering chat template: {}", describe(&e)))
    }

    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }
}

/// `chat_template` is a string, or a list of `{"name", "template"}` entries.
fn template_from_field(v: &Json) -> Result<String> {
    match v {
        Json::String(s) => Ok(s.clone()),
        Json::Array(items) => {
            let mut names = Vec::new();
            for item in items {
                let name = item.get("name").and_then(Json::as_str).unwrap_or("");
                if name == "default" {
                    return item
                        .get("template")
                        .and_then(Json::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("entry \"default\" has no string \"template\""));
                }
                names.push(name.to_string());
            }
            bail!("no template named \"default\" among {names:?}")
        }
        other => bail!("expected a string or a list of named templates, got {other}"),
    }
}

/// Special tokens are stored as a string or as an AddedToken object `{"content": ...}`.
fn special_token(v: &Json) -> Result<Option<String>> {
    match v {
        Json::Null => Ok(None),
        Json::String(s) => Ok(Some(s.clone())),
        Json::Object(m) => match m.get("content") {
            Some(Json::String(s)) => Ok(Some(s.clone())),
            _ => bail!("token object without a string \"content\""),
        },
        other => bail!("expected a string or a token object, got {other}"),
    }
}

/// Error text with the template line, since minijinja's Display omits the source location detail.
fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        if !s.contains("line") {
            s.push_str(&format!(" (template line {line})"));
        }
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("template raised: {msg}"),
    ))
}

/// `strftime_now(format)` as transformers provides it (Llama 3.x templates print today's date).
fn strftime_now(format: String) -> Result<Value, Error> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item> = StrftimeItems::new(&format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("invalid strftime format {format:?}"),
        ));
    }
    let mut out = String::new();
    use std::fmt::Write;
    write!(
        out,
        "{}",
        chrono::Local::now().format_with_items(items.into_iter())
    )
    .map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot format date with {format:?}"),
        )
    })?;
    Ok(Value::from(out))
}

/// `tojson` with transformers' semantics (`json.dumps(x, ensure_ascii=False, indent=..,
/// sort_keys=..)`), not minijinja's HTML-safe variant.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    if ensure_ascii == Some(true) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson(ensure_ascii=true) is not supported",
        ));
    }
    let json = serde_json::to_value(&value).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: value is not JSON: {e}"),
        )
    })?;
    Ok(Value::from_safe_string(pyjson::dumps(
        &json,
        indent,
        sort_keys.unwrap_or(false),
    )))
}
