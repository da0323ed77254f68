//! Deterministic embedding vectors by feature hashing: every word, and every character
//! trigram of it, adds ±1 to a few hashed dimensions, then the vector is L2-normalized. Texts
//! sharing words therefore have a higher cosine similarity, and so do inflections of a word
//! ("refund", "refunding"), which a real embedding model also places near each other and a
//! word index does not: enough for hybrid-retrieval tests to be meaningful.

use crate::behaviour::text_tokens;
use crate::ids;

/// One input of an embeddings request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EmbedInput {
    Text(String),
    /// Pre-tokenized input; each token id acts as one word.
    Tokens(Vec<u32>),
}

impl EmbedInput {
    pub fn tokens(&self) -> u64 {
        match self {
            Self::Text(text) => text_tokens(text),
            Self::Tokens(tokens) => u64::try_from(tokens.len()).unwrap_or(u64::MAX),
        }
    }

    fn features(&self) -> Vec<String> {
        match self {
            Self::Text(text) => {
                let mut features = Vec::new();
                for word in text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    let word = word.to_lowercase();
                    let padded: Vec<char> = format!("<{word}>").chars().collect();
                    features.extend(
                        padded
                            .windows(3)
                            .map(|w| format!("~{}", w.iter().collect::<String>())),
                    );
                    features.push(word);
                }
                features
            }
            Self::Tokens(tokens) => tokens.iter().map(|t| format!("#{t}")).collect(),
        }
    }
}

/// Dimensions each feature touches: spreads features so that unrelated texts rarely collide.
const SLOTS_PER_FEATURE: u64 = 4;

pub(crate) fn embed(input: &EmbedInput, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0.0_f32; dimensions];
    let Ok(modulus) = u64::try_from(dimensions) else {
        return vector;
    };
    if modulus == 0 {
        return vector;
    }
    let mut features = input.features();
    if features.is_empty() {
        // Gives empty input a fixed unit vector instead of an unnormalizable zero vector.
        features.push(String::new());
    }
    for feature in &features {
        let base = ids::fnv1a(feature.as_bytes());
        for slot in 0..SLOTS_PER_FEATURE {
            let hash = ids::fnv1a(&(base ^ slot).to_le_bytes());
            let index = usize::try_from(hash % modulus).unwrap_or(0);
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            if let Some(x) = vector.get_mut(index) {
                *x += sign;
            }
        }
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    } else if let Some(first) = vector.first_mut() {
        // Every feature cancelled out; any unit vector keeps the result normalized.
        *first = 1.0;
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> EmbedInput {
        EmbedInput::Text(s.to_owned())
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_normalized_and_deterministic() {
        for input in [
            text("the quick brown fox"),
            text(""),
            EmbedInput::Tokens(vec![1, 2, 3]),
        ] {
            let v = embed(&input, 64);
            assert_eq!(v.len(), 64);
            assert!((cosine(&v, &v) - 1.0).abs() < 1e-5);
            assert_eq!(v, embed(&input, 64));
        }
        assert!(embed(&text("x"), 0).is_empty());
    }

    #[test]
    fn shared_words_mean_higher_similarity() {
        let base = embed(&text("rust async runtime tokio"), 256);
        let near = embed(&text("tokio is an async runtime"), 256);
        let far = embed(&text("banana bread recipe"), 256);
        assert!(cosine(&base, &near) > cosine(&base, &far) + 0.3);
        assert_eq!(
            embed(&text("Hello, WORLD"), 32),
            embed(&text("hello world"), 32)
        );
    }

    #[test]
    fn inflections_of_a_word_are_near() {
        let query = embed(&text("refunding"), 512);
        let inflected = embed(&text("refunds"), 512);
        let unrelated = embed(&text("shipping"), 512);
        assert!(
            cosine(&query, &inflected) > cosine(&query, &unrelated) + 0.3,
            "{} vs {}",
            cosine(&query, &inflected),
            cosine(&query, &unrelated)
        );
    }
}
