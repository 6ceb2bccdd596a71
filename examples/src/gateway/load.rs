//! The request stream: questions drawn from a Zipf-distributed pool, so that popular questions repeat
//! as they do in real traffic, each written a little differently (case, spaces) now and then.

use super::faults::{SplitMix, mix};

/// `size` distinct questions, the most popular first.
#[derive(Debug, Clone)]
pub struct QueryPool {
    questions: Vec<String>,
    /// `cdf[k]` = probability of drawing one of questions `0..=k`.
    cdf: Vec<f64>,
}

const TEMPLATES: [&str; 8] = [
    "What is {t} in {l}?",
    "How do I use {t} in {l}?",
    "Explain {t} in {l} simply",
    "Show me an example of {t} in {l}",
    "What are common mistakes with {t} in {l}?",
    "When should I avoid {t} in {l}?",
    "How do I test {t} in {l}?",
    "Is {t} in {l} fast?",
];

const TOPICS: [&str; 50] = [
    "async",
    "closures",
    "traits",
    "generics",
    "lifetimes",
    "iterators",
    "error handling",
    "pattern matching",
    "macros",
    "modules",
    "ownership",
    "borrowing",
    "smart pointers",
    "threads",
    "channels",
    "mutexes",
    "atomics",
    "unsafe code",
    "FFI",
    "serialization",
    "logging",
    "tracing",
    "retries",
    "timeouts",
    "circuit breakers",
    "caching",
    "rate limiting",
    "HTTP clients",
    "HTTP servers",
    "JSON",
    "databases",
    "connection pools",
    "testing",
    "mocking",
    "benchmarks",
    "profiling",
    "memory layout",
    "strings",
    "collections",
    "hash maps",
    "sorting",
    "recursion",
    "enums",
    "structs",
    "slices",
    "vectors",
    "options",
    "results",
    "dependency injection",
    "configuration",
];

const LANGUAGES: [&str; 5] = ["Rust", "Python", "Go", "TypeScript", "Java"];

impl QueryPool {
    /// A pool of `size` questions (at least 1) with Zipf weights `1 / rank^exponent`.
    pub fn new(size: usize, exponent: f64) -> QueryPool {
        let size = size.max(1);
        let combinations = TEMPLATES.len() * TOPICS.len() * LANGUAGES.len();
        let questions = (0..size)
            .map(|i| {
                let k = i % combinations;
                let template = TEMPLATES[k % TEMPLATES.len()];
                let topic = TOPICS[(k / TEMPLATES.len()) % TOPICS.len()];
                let language = LANGUAGES[k / (TEMPLATES.len() * TOPICS.len())];
                let question = template.replace("{t}", topic).replace("{l}", language);
                match i / combinations {
                    0 => question,
                    round => format!("{question} (variant {round})"),
                }
            })
            .collect();
        let weights: Vec<f64> = (1..=size).map(|r| (r as f64).powf(-exponent)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        QueryPool { questions, cdf }
    }

    /// The number of distinct questions.
    pub fn len(&self) -> usize {
        self.questions.len()
    }

    /// Whether the pool is empty (never: it holds at least one question).
    pub fn is_empty(&self) -> bool {
        self.questions.is_empty()
    }

    /// Question `index`.
    pub fn question(&self, index: usize) -> &str {
        &self.questions[index.min(self.questions.len() - 1)]
    }

    /// The index for a uniform draw `u` in `[0, 1)` (inverse CDF by binary search).
    pub fn sample(&self, u: f64) -> usize {
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.questions.len() - 1)
    }
}

/// One request of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its position in the stream, also its `x-request-id`.
    pub index: usize,
    /// The pool index of its question.
    pub question_index: usize,
    /// The question as the user typed it.
    pub text: String,
}

/// `requests` requests drawn from `pool` with `seed`: the same seed, the same stream.
pub fn stream(pool: &QueryPool, requests: usize, seed: u64) -> Vec<Request> {
    let mut rng = SplitMix::new(mix(seed) ^ 0x0051_7cc1_b727_220a);
    (0..requests)
        .map(|index| {
            let question_index = pool.sample(rng.next_f64());
            let question = pool.question(question_index);
            let style = rng.next_f64();
            let text = if style < 0.15 {
                question.to_lowercase()
            } else if style < 0.25 {
                format!("  {question} ")
            } else {
                question.to_owned()
            };
            Request {
                index,
                question_index,
                text,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_pool_holds_distinct_questions() {
        let pool = QueryPool::new(2_500, 1.0);
        let distinct: HashSet<_> = (0..pool.len()).map(|i| pool.question(i)).collect();
        assert_eq!(distinct.len(), 2_500);
    }

    #[test]
    fn draws_follow_zipf() {
        let pool = QueryPool::new(2_000, 1.0);
        let requests = stream(&pool, 20_000, 1);
        let top = requests.iter().filter(|r| r.question_index == 0).count() as f64;
        let second = requests.iter().filter(|r| r.question_index == 1).count() as f64;
        // P(rank 1) = 1 / H(2000) ≈ 0.122; rank 2 half as likely.
        assert!((0.11..0.135).contains(&(top / 20_000.0)), "{top}");
        assert!((1.7..2.3).contains(&(top / second)), "{top} / {second}");
    }

    #[test]
    fn same_seed_same_stream() {
        let pool = QueryPool::new(100, 1.0);
        assert_eq!(stream(&pool, 500, 3), stream(&pool, 500, 3));
        assert_ne!(stream(&pool, 500, 3), stream(&pool, 500, 4));
    }

    #[test]
    fn variants_normalise_to_their_question() {
        let pool = QueryPool::new(100, 1.0);
        for request in stream(&pool, 500, 5) {
            assert_eq!(
                request.text.trim().to_lowercase(),
                pool.question(request.question_index).to_lowercase()
            );
        }
    }
}
