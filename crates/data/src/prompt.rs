//! Prompt templates: how a question becomes the text the model continues.
//!
//! | name | text |
//! |---|---|
//! | `qwen25-math-cot` | the Qwen2.5-Math evaluation prompt (docs/PAPER.md §4), raw text, no chat template |
//! | `chat` | the model's own chat template over one user message: question + [`TRAINING_SUFFIX`] (exactly how the verl training prompts are built) |
//! | `plain` | the question itself |

use std::fmt;
use std::str::FromStr;

use crate::verl::ChatTurn;

/// Appended (after one space) to every question of the training files (`shared/data/train`).
pub const TRAINING_SUFFIX: &str =
    "Let's think step by step and output the final answer within \\boxed{}.";

const QWEN25_MATH_COT_HEAD: &str = "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>user\n";
const QWEN25_MATH_COT_TAIL: &str = "<|im_end|>\n<|im_start|>assistant\n";

/// A model's chat template (implemented over `oneshot-hf`'s template by the caller), so this
/// crate does not depend on the model stack.
pub trait ChatRenderer {
    fn render_chat(
        &self,
        messages: &[ChatTurn],
        add_generation_prompt: bool,
    ) -> anyhow::Result<String>;
}

/// An evaluation prompt; in configs and flags by [`PromptTemplate::name`] (an unknown name is an
/// error listing the known ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PromptTemplate {
    Qwen25MathCot,
    Chat,
    Plain,
}

impl PromptTemplate {
    pub const ALL: [PromptTemplate; 3] = [
        PromptTemplate::Qwen25MathCot,
        PromptTemplate::Chat,
        PromptTemplate::Plain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PromptTemplate::Qwen25MathCot => "qwen25-math-cot",
            PromptTemplate::Chat => "chat",
            PromptTemplate::Plain => "plain",
        }
    }

    /// Whether rendering needs the model's chat template.
    pub fn needs_chat_template(self) -> bool {
        self == PromptTemplate::Chat
    }

    /// Renders `question`; `chat` must be given for [`PromptTemplate::Chat`].
    pub fn render(self, question: &str, chat: Option<&dyn ChatRenderer>) -> anyhow::Result<String> {
        Ok(match self {
            PromptTemplate::Qwen25MathCot => {
                format!("{QWEN25_MATH_COT_HEAD}{question}{QWEN25_MATH_COT_TAIL}")
            }
            PromptTemplate::Plain => question.to_owned(),
            PromptTemplate::Chat => {
                let chat = chat.ok_or_else(|| {
                    anyhow::anyhow!("the `chat` prompt template needs the model's chat template")
                })?;
                chat.render_chat(&[ChatTurn::user(training_question(question))], true)?
            }
        })
    }
}

impl fmt::Display for PromptTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PromptTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PromptTemplate::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = PromptTemplate::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown prompt template `{s}` (known: {})",
                    names.join(", ")
                )
            })
    }
}

impl TryFrom<String> for PromptTemplate {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PromptTemplate> for String {
    fn from(t: PromptTemplate) -> String {
        t.name().to_owned()
    }
}

/// The user message of a training prompt: question, one space, [`TRAINING_SUFFIX`].
pub fn training_question(question: &str) -> String {
    format!("{question} {TRAINING_SUFFIX}")
}

/// The question of a training user message (inverse of [`training_question`]); text without the
/// suffix is returned unchanged.
pub fn strip_training_suffix(text: &str) -> &str {
    text.strip_suffix(TRAINING_SUFFIX)
        .map(|q| q.strip_suffix(' ').unwrap_or(q))
        .unwrap_or(text)
}
