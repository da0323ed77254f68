//! Exact cost of a call from its canonical usage and its deployment's price.
//!
//! Money is counted in integer picodollars (1e-12 USD): a price in USD per million tokens with
//! up to six decimals is a whole number of picodollars per token, so a cost is an exact product
//! and sums of costs (a key's budget, a report) never drift the way float sums do. The router's
//! float estimates rank deployments; these numbers are what gets recorded and billed.
//!
//! This is the one money path: [`cost`] prices an answer, [`format_usd`] writes picodollars as
//! dollars (the `x-crossbar-cost-usd` header, usage reports, what-if, the dashboard) and
//! [`parse_usd`] reads them back exactly (an agent reading a gateway's header), so the header,
//! the usage record, a key's budget and an agent run agree to the picodollar.

use crate::chat::Usage;
use crate::config::Price;

pub const PICO_PER_USD: u64 = 1_000_000_000_000;

/// A price in USD per million tokens as picodollars per token (1 USD/M = 1,000,000 p$/token).
/// Negative or non-finite prices count as free; beyond six decimals the price is rounded.
pub fn pico_per_token(usd_per_million: f64) -> u64 {
    let pico = (usd_per_million * 1e6).round();
    if pico.is_finite() && pico > 0.0 {
        // Saturating float-to-int conversion: absurd prices cap rather than wrap.
        pico as u64
    } else {
        0
    }
}

/// USD as picodollars, rounded; for budgets typed in dollars and the router's float estimates.
pub fn usd_to_pico(usd: f64) -> u64 {
    let pico = (usd * PICO_PER_USD as f64).round();
    if pico.is_finite() && pico > 0.0 {
        pico as u64
    } else {
        0
    }
}

pub fn pico_to_usd(pico: u64) -> f64 {
    pico as f64 / PICO_PER_USD as f64
}

/// Picodollars as an exact decimal string, e.g. `0.005615`: at least two decimals, at most
/// twelve, trailing zeros trimmed. [`parse_usd`] reads it back.
pub fn format_usd(pico: u64) -> String {
    let whole = pico / PICO_PER_USD;
    let fraction = format!("{:012}", pico % PICO_PER_USD);
    let trimmed = fraction.trim_end_matches('0');
    if trimmed.len() < 2 {
        format!("{whole}.{:0<2}", trimmed)
    } else {
        format!("{whole}.{trimmed}")
    }
}

/// A decimal amount of dollars (`0.005615`, `12`, `12.50`) as picodollars, exactly, without
/// going through a float; `None` for anything else, a negative amount, more than twelve
/// decimals or more than `u64::MAX` picodollars.
pub fn parse_usd(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 12 {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<12}").parse().ok()?
    };
    whole.checked_mul(PICO_PER_USD)?.checked_add(fraction)
}

/// What a call cost, by kind of token, in picodollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Input tokens neither read from nor written to a prompt cache.
    pub input: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    /// Output tokens, reasoning included (priced as output: `Price` has no reasoning rate).
    pub output: u64,
}

impl Cost {
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.cached_input)
            .saturating_add(self.cache_write)
            .saturating_add(self.output)
    }
}

/// The cost of canonical usage (providers.md §7.3: input includes cache reads and writes) at
/// `price`. Cache reads and writes use their own prices, else the input price. Usage that
/// claims more cached tokens than input is clamped so no token is billed twice.
pub fn cost(price: &Price, usage: &Usage) -> Cost {
    let cached = usage.cached_input_tokens.min(usage.input_tokens);
    let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
    let fresh = usage.input_tokens - cached - written;
    let input_rate = pico_per_token(price.input);
    let times = |tokens: u64, rate: u64| tokens.saturating_mul(rate);
    Cost {
        input: times(fresh, input_rate),
        cached_input: times(
            cached,
            price.cached_input.map_or(input_rate, pico_per_token),
        ),
        cache_write: times(
            written,
            price.cache_write.map_or(input_rate, pico_per_token),
        ),
        output: times(usage.output_tokens, pico_per_token(price.output)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::StreamEvent;
    use crate::dialects::{anthropic, bedrock, gemini, openai};

    fn price(input: f64, output: f64, cached: Option<f64>, write: Option<f64>) -> Price {
        Price {
            input,
            output,
            cached_input: cached,
            cache_write: write,
        }
    }

    #[test]
    fn prices_convert_to_whole_picodollars_per_token() {
        assert_eq!(pico_per_token(2.50), 2_500_000);
        assert_eq!(pico_per_token(0.075), 75_000);
        assert_eq!(pico_per_token(0.02), 20_000);
        assert_eq!(pico_per_token(0.0), 0);
        assert_eq!(pico_per_token(-1.0), 0);
        assert_eq!(pico_per_token(f64::NAN), 0);
        assert_eq!(usd_to_pico(0.005615), 5_615_000_000);
        assert_eq!(usd_to_pico(-3.0), 0);
        assert_eq!(format_usd(5_615_000_000), "0.005615");
        assert_eq!(format_usd(140_000), "0.00000014");
        assert_eq!(format_usd(12 * PICO_PER_USD), "12.00");
        assert_eq!(format_usd(PICO_PER_USD / 2), "0.50");
    }

    #[test]
    fn dollars_read_back_exactly() {
        for pico in [
            0,
            1,
            140_000,
            429_000_000,
            5_615_000_000,
            12 * PICO_PER_USD,
            u64::MAX,
        ] {
            assert_eq!(parse_usd(&format_usd(pico)), Some(pico), "{pico}");
        }
        assert_eq!(format_usd(429_000_000), "0.000429");
        assert_eq!(parse_usd("0.000429"), Some(429_000_000));
        assert_eq!(parse_usd("3"), Some(3 * PICO_PER_USD));
        assert_eq!(parse_usd("0.000000000001"), Some(1));
        for bad in [
            "",
            ".5",
            "-1",
            "1e-6",
            "0.0000000000001",
            "1.2.3",
            " 1",
            "18446745",
        ] {
            assert_eq!(parse_usd(bad), None, "{bad}");
        }
    }

    /// gpt-4o at $2.50 / $1.25 cached / $10.00: 2006 prompt tokens of which 1920 cached, 300
    /// out. 86 × 2.5 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 µ$ = $0.005615.
    #[test]
    fn openai_chat_with_cached_prompt() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o",
            "choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
                     "prompt_tokens_details":{"cached_tokens":1920}}}"#;
        let usage = openai::decode_chat_response(body).unwrap().usage.unwrap();
        let cost = cost(&price(2.50, 10.00, Some(1.25), None), &usage);
        assert_eq!(cost.input, 215_000_000);
        assert_eq!(cost.cached_input, 2_400_000_000);
        assert_eq!(cost.cache_write, 0);
        assert_eq!(cost.output, 3_000_000_000);
        assert_eq!(cost.total(), 5_615_000_000);
        assert_eq!(format_usd(cost.total()), "0.005615");
    }

    /// o3-mini at $1.10 / $4.40: reasoning tokens are inside completion_tokens and billed as
    /// output once. 1000 × 1.10 + 1500 × 4.40 = 1100 + 6600 µ$ = $0.0077.
    #[test]
    fn openai_reasoning_is_billed_as_output_once() {
        let body = br#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"o3-mini",
            "choices":[{"index":0,"message":{"role":"assistant","content":"42"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":1000,"completion_tokens":1500,"total_tokens":2500,
                     "completion_tokens_details":{"reasoning_tokens":1200}}}"#;
        let usage = openai::decode_chat_response(body).unwrap().usage.unwrap();
        assert_eq!(usage.reasoning_tokens, 1200);
        let cost = cost(&price(1.10, 4.40, Some(0.55), None), &usage);
        assert_eq!(cost.total(), 7_700_000_000);
    }

    /// Claude at $3 in / $3.75 cache write / $0.30 cache read / $15 out: 50 fresh, 2000 written,
    /// 10000 read, 400 out. 150 + 7500 + 3000 + 6000 µ$ = $0.01665.
    #[test]
    fn anthropic_cache_reads_and_writes_at_their_own_prices() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4",
            "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":50,"cache_creation_input_tokens":2000,
                     "cache_read_input_tokens":10000,"output_tokens":400}}"#;
        let usage = anthropic::decode_response(body).unwrap().usage.unwrap();
        assert_eq!(usage.input_tokens, 12_050);
        let cost = cost(&price(3.0, 15.0, Some(0.30), Some(3.75)), &usage);
        assert_eq!(cost.input, 150_000_000);
        assert_eq!(cost.cache_write, 7_500_000_000);
        assert_eq!(cost.cached_input, 3_000_000_000);
        assert_eq!(cost.output, 6_000_000_000);
        assert_eq!(cost.total(), 16_650_000_000);
    }

    /// Claude on Bedrock, same prices: inputTokens 120 excludes cacheRead 3000 and cacheWrite
    /// 500; 250 out. 360 + 900 + 1875 + 3750 µ$ = $0.006885.
    #[test]
    fn bedrock_converse_cache_traffic() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},
            "stopReason":"end_turn","metrics":{"latencyMs":100},
            "usage":{"inputTokens":120,"outputTokens":250,"totalTokens":3870,
                     "cacheReadInputTokens":3000,"cacheWriteInputTokens":500}}"#;
        let usage = bedrock::decode_chat_response(body).unwrap().usage.unwrap();
        assert_eq!(usage.input_tokens, 3620);
        let cost = cost(&price(3.0, 15.0, Some(0.30), Some(3.75)), &usage);
        assert_eq!(cost.total(), 6_885_000_000);
    }

    /// Gemini 2.5 Flash at $0.30 / $0.075 cached / $2.50: promptTokenCount 5000 includes 4000
    /// cached; 200 candidates + 800 thoughts out. 300 + 300 + 2500 µ$ = $0.0031.
    #[test]
    fn gemini_cached_subset_and_thoughts() {
        let chunk = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},
            "finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":5000,"cachedContentTokenCount":4000,
            "candidatesTokenCount":200,"thoughtsTokenCount":800,"totalTokenCount":6000},
            "modelVersion":"gemini-2.5-flash","responseId":"r1"}"#;
        let mut decoder = gemini::StreamDecoder::new();
        let mut events = Vec::new();
        decoder.decode(chunk, &mut events).unwrap();
        let usage = events
            .iter()
            .find_map(|e| match e {
                StreamEvent::Usage(u) => Some(*u),
                _ => None,
            })
            .unwrap();
        assert_eq!(usage.output_tokens, 1000);
        let cost = cost(&price(0.30, 2.50, Some(0.075), None), &usage);
        assert_eq!(cost.input, 300_000_000);
        assert_eq!(cost.cached_input, 300_000_000);
        assert_eq!(cost.output, 2_500_000_000);
        assert_eq!(cost.total(), 3_100_000_000);
    }

    /// Without cache prices, cached and written tokens cost the input price; 7 embedding tokens
    /// at $0.02/M cost 0.14 µ$, which a micro-dollar ledger would round to nothing.
    #[test]
    fn missing_cache_prices_fall_back_and_tiny_costs_stay_exact() {
        let usage = Usage {
            input_tokens: 1000,
            cached_input_tokens: 600,
            cache_write_tokens: 100,
            output_tokens: 0,
            reasoning_tokens: 0,
        };
        assert_eq!(
            cost(&price(2.0, 8.0, None, None), &usage).total(),
            2_000_000_000
        );
        let tiny = Usage {
            input_tokens: 7,
            ..Usage::default()
        };
        assert_eq!(cost(&price(0.02, 0.0, None, None), &tiny).total(), 140_000);
        assert_eq!(cost(&Price::default(), &usage).total(), 0);
    }

    /// A provider claiming more cached tokens than input is clamped: nothing billed twice.
    #[test]
    fn inconsistent_usage_is_clamped() {
        let usage = Usage {
            input_tokens: 100,
            cached_input_tokens: 150,
            cache_write_tokens: 50,
            output_tokens: 10,
            reasoning_tokens: 0,
        };
        let cost = cost(&price(1.0, 2.0, Some(0.5), Some(1.25)), &usage);
        assert_eq!(cost.cached_input, 100 * 500_000);
        assert_eq!(cost.cache_write, 0);
        assert_eq!(cost.input, 0);
        assert_eq!(cost.output, 20_000_000);
    }
}
