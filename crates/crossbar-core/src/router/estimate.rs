//! Prompt-size and cost estimates made before a call (the router ranks and caps on them), and
//! the cost of a call from the usage its provider reported.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};

use tiktoken_rs::CoreBPE;

use crate::chat::{ChatRequest, ContentPart, Usage};
use crate::config::Price;
use crate::embeddings::{EmbeddingInput, EmbeddingRequest};

/// How a deployment's prompt tokens are estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokenizer {
    /// OpenAI-family models: `o200k_base` via tiktoken.
    OpenAi,
    /// Everyone else: about four bytes per token, corrected per deployment from reported usage.
    Approximate,
}

/// Text beyond this many bytes is not tokenized: its count is extrapolated from the sample,
/// so estimating a huge prompt costs no more than a small one (about 0.2 ms in a release
/// build; 8 KiB took 0.9 ms). Reported usage corrects what the extrapolation misses.
const SAMPLE_BYTES: usize = 2 * 1024;
/// What an image usually costs (a 512×512 tile plus the base, OpenAI's high detail).
const IMAGE_TOKENS: f64 = 765.0;
/// Role and separator tokens around each message.
const MESSAGE_OVERHEAD: f64 = 4.0;
/// Output tokens expected when a deployment has reported none yet and the request sets no
/// `max_tokens`.
pub const DEFAULT_OUTPUT_TOKENS: f64 = 256.0;

/// Samples whose token counts are remembered (see [`counted`]).
const REMEMBERED: usize = 256;

/// Recent samples and their token counts, in a slot chosen by the sample's hash.
type Remembered = Vec<Option<(String, usize)>>;

/// The OpenAI token count of `sample`, remembered: every turn of an agent's conversation (and
/// every retry of a request) starts with the same system prompt and first messages, so its
/// sample (the first [`SAMPLE_BYTES`]) repeats, and tokenizing it again (`fancy_regex`) was a
/// third of a small request's CPU. The sample itself is kept and compared, so a count is never
/// another text's.
fn counted(bpe: &CoreBPE, sample: &str) -> usize {
    static COUNTS: OnceLock<Mutex<Remembered>> = OnceLock::new();
    let counts = COUNTS.get_or_init(|| Mutex::new(vec![None; REMEMBERED]));
    let mut hasher = DefaultHasher::new();
    sample.hash(&mut hasher);
    // The remainder is below REMEMBERED, so it fits.
    let slot = usize::try_from(hasher.finish() % REMEMBERED as u64).unwrap_or(0);
    if let Some((text, count)) = &crate::router::lock(counts)[slot]
        && text == sample
    {
        return *count;
    }
    let count = bpe.encode_ordinary(sample).len();
    crate::router::lock(counts)[slot] = Some((sample.to_owned(), count));
    count
}

/// The BPE is large: loaded once, on the first request that needs it.
fn bpe() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| match tiktoken_rs::o200k_base() {
        Ok(bpe) => Some(bpe),
        Err(error) => {
            tracing::warn!(%error, "tiktoken unavailable; estimating prompt tokens from length");
            None
        }
    })
    .as_ref()
}

/// Loads the BPE on a background thread, so the first request does not wait about a second
/// for it (a request that needs it meanwhile waits only for the rest of the load).
pub fn warm_up() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("tiktoken-load".to_owned())
            .spawn(|| {
                bpe();
            });
    });
}

/// A request's prompt, reduced to what an estimate needs.
#[derive(Clone, Debug, Default)]
pub struct Prompt {
    /// The first [`SAMPLE_BYTES`] of the text.
    sample: String,
    bytes: usize,
    images: usize,
    messages: usize,
    /// Tokens known exactly (pre-tokenized embedding input).
    exact: usize,
}

impl Prompt {
    fn push(&mut self, text: &str) {
        self.bytes += text.len();
        let room = SAMPLE_BYTES.saturating_sub(self.sample.len());
        if room > 0 {
            let mut end = room.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.sample.push_str(&text[..end]);
        }
    }

    pub fn of_chat(request: &ChatRequest) -> Self {
        let mut prompt = Self::default();
        for message in &request.messages {
            prompt.messages += 1;
            for part in &message.content {
                match part {
                    ContentPart::Text { text } => prompt.push(text),
                    // Documents and audio are counted as attachments of an image's share.
                    ContentPart::Image { .. }
                    | ContentPart::Document { .. }
                    | ContentPart::Audio { .. } => prompt.images += 1,
                }
            }
            for call in &message.tool_calls {
                prompt.push(&call.name);
                prompt.push(&call.arguments);
            }
        }
        for tool in &request.tools {
            prompt.push(&tool.name);
            if let Some(description) = &tool.description {
                prompt.push(description);
            }
            if let Some(parameters) = &tool.parameters {
                prompt.push(&parameters.to_string());
            }
        }
        prompt
    }

    pub fn of_embedding(request: &EmbeddingRequest) -> Self {
        let mut prompt = Self::default();
        match &request.input {
            EmbeddingInput::Texts(texts) => {
                for text in texts {
                    prompt.push(text);
                }
            }
            EmbeddingInput::Tokens(inputs) => prompt.exact = inputs.iter().map(Vec::len).sum(),
        }
        prompt
    }

    /// Estimated prompt tokens under `tokenizer`, before per-deployment calibration.
    pub fn tokens(&self, tokenizer: Tokenizer) -> f64 {
        let text = match (tokenizer, bpe()) {
            (Tokenizer::OpenAi, Some(bpe)) if !self.sample.is_empty() => {
                let sampled = counted(bpe, &self.sample) as f64;
                sampled * self.bytes as f64 / self.sample.len() as f64
            }
            _ => self.bytes as f64 / 4.0,
        };
        text + self.images as f64 * IMAGE_TOKENS
            + self.messages as f64 * MESSAGE_OVERHEAD
            + self.exact as f64
    }
}

const PER_TOKEN: f64 = 1e-6;

/// What a call is expected to cost before it is made, in USD as a float: for ranking
/// deployments, the `x-crossbar-max-cost-usd` filter and the deployment statistics, never for
/// what is charged (that is [`crate::pricing::cost`] of the reported usage, in picodollars).
/// A cancelled hedge, which reports no usage, is charged this estimate rounded once to
/// picodollars.
pub fn estimated_cost(price: &Price, prompt_tokens: f64, output_tokens: f64) -> f64 {
    (prompt_tokens * price.input + output_tokens * price.output) * PER_TOKEN
}

/// What cached input saved against the full input price, in picodollars: the same usage
/// priced with its cached tokens at the input price, less its real cost.
pub fn cache_saving(price: &Price, usage: &Usage) -> u64 {
    let uncached = Usage {
        cached_input_tokens: 0,
        ..*usage
    };
    crate::pricing::cost(price, &uncached)
        .total()
        .saturating_sub(crate::pricing::cost(price, usage).total())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, Role};

    #[test]
    fn tiktoken_counts_words_and_approximation_counts_bytes() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let request = ChatRequest::new("m", vec![Message::text(Role::User, text.clone())]);
        let prompt = Prompt::of_chat(&request);
        let exact = prompt.tokens(Tokenizer::OpenAi);
        // Ten tokens per sentence, give or take the message overhead.
        assert!((195.0..=215.0).contains(&exact), "{exact}");
        let rough = prompt.tokens(Tokenizer::Approximate);
        assert_eq!(rough, text.len() as f64 / 4.0 + MESSAGE_OVERHEAD);
    }

    #[test]
    fn long_prompts_are_extrapolated_from_a_sample() {
        let text = "lorem ipsum dolor sit amet ".repeat(4000);
        let request = ChatRequest::new("m", vec![Message::text(Role::User, text.clone())]);
        let prompt = Prompt::of_chat(&request);
        assert_eq!(prompt.sample.len(), SAMPLE_BYTES);
        let estimate = prompt.tokens(Tokenizer::OpenAi);
        let bpe = bpe().unwrap();
        let exact = bpe.encode_ordinary(&text).len() as f64;
        assert!(
            (estimate - exact).abs() / exact < 0.02,
            "{estimate} vs {exact}"
        );
    }

    #[test]
    fn a_remembered_count_is_the_same_text_s() {
        let bpe = bpe().unwrap();
        let text = "Remembered counts belong to their own text only. ".repeat(3);
        let first = counted(bpe, &text);
        assert_eq!(first, bpe.encode_ordinary(&text).len());
        assert_eq!(counted(bpe, &text), first);
        // Any other text is counted afresh, whatever slot it lands in.
        for n in 0..2 * REMEMBERED {
            let other = format!("{n} other words");
            assert_eq!(counted(bpe, &other), bpe.encode_ordinary(&other).len());
        }
        assert_eq!(counted(bpe, &text), first);
    }

    #[test]
    fn costs_follow_the_price_per_million() {
        let price = Price {
            input: 2.0,
            output: 10.0,
            cached_input: Some(0.5),
            cache_write: None,
        };
        let usage = Usage {
            input_tokens: 1_000_000,
            cached_input_tokens: 400_000,
            cache_write_tokens: 0,
            output_tokens: 100_000,
            reasoning_tokens: 0,
        };
        // 400,000 cached tokens at $1.50 less per million: $0.60 exactly.
        assert_eq!(cache_saving(&price, &usage), 600_000_000_000);
        assert!((estimated_cost(&price, 1e6, 0.0) - 2.0).abs() < 1e-9);
    }
}
