//! A procedural bilingual corpus (a TinyStories stand-in for SGTM): one
//! semantic sampler (an animate subject, a verb, an object its verb
//! accepts, optional adjectives) rendered in language A (English-like:
//! determiner, adjective, noun; SVO) or language B (Spanish-like: gendered
//! determiners, the adjective after the noun and agreeing in gender).
//! The two languages share no word; they share `<bos>`, `.` and `<pad>`.
//! A document is `<bos>` and four sentences. Seeded: the same seed gives
//! the same corpus.

use crate::{Error, Result};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which language a document is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Language {
    /// English-like (the retain language in SGTM's reproduction).
    A,
    /// Spanish-like (the forget language).
    B,
}

/// How many documents to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BilingualConfig {
    /// Training documents in language A.
    pub train_a: usize,
    /// Training documents in language B.
    pub train_b: usize,
    /// Held-out documents per language.
    pub test_per_language: usize,
    /// Sentences per document.
    pub sentences: usize,
}

impl Default for BilingualConfig {
    /// 3,000 A and 3,000 B training documents (the reference's 50 % forget
    /// share), 300 held out per language, four sentences each.
    fn default() -> Self {
        Self {
            train_a: 3000,
            train_b: 3000,
            test_per_language: 300,
            sentences: 4,
        }
    }
}

/// The generated corpus: token ids per document.
#[derive(Debug, Clone)]
pub struct BilingualCorpus {
    /// Every token's text; ids index this.
    pub vocab: Vec<String>,
    /// The language of every token id (`None` for the shared ones).
    pub token_language: Vec<Option<Language>>,
    /// Training documents in A.
    pub train_a: Vec<Vec<i64>>,
    /// Training documents in B.
    pub train_b: Vec<Vec<i64>>,
    /// Held-out documents in A.
    pub test_a: Vec<Vec<i64>>,
    /// Held-out documents in B.
    pub test_b: Vec<Vec<i64>>,
}

/// `<pad>`'s id.
pub const PAD: i64 = 0;
/// `<bos>`'s id.
pub const BOS: i64 = 1;
/// `.`'s id.
pub const STOP: i64 = 2;

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Animate,
    Food,
    Thing,
}

/// (English, Spanish, Spanish gender is feminine, class).
const NOUNS: [(&str, &str, bool, Class); 14] = [
    ("cat", "gato", false, Class::Animate),
    ("dog", "perro", false, Class::Animate),
    ("girl", "nina", true, Class::Animate),
    ("boy", "nino", false, Class::Animate),
    ("bird", "pajaro", false, Class::Animate),
    ("queen", "reina", true, Class::Animate),
    ("apple", "manzana", true, Class::Food),
    ("bread", "pan", false, Class::Food),
    ("cake", "tarta", true, Class::Food),
    ("soup", "sopa", true, Class::Food),
    ("ball", "pelota", true, Class::Thing),
    ("box", "caja", true, Class::Thing),
    ("book", "libro", false, Class::Thing),
    ("tree", "arbol", false, Class::Thing),
];

/// (English, Spanish masculine, Spanish feminine).
const ADJECTIVES: [(&str, &str, &str); 6] = [
    ("big", "grande", "grande"),
    ("small", "pequeno", "pequena"),
    ("red", "rojo", "roja"),
    ("happy", "feliz", "feliz"),
    ("old", "viejo", "vieja"),
    ("new", "nuevo", "nueva"),
];

/// (English, Spanish, the object classes it takes).
const VERBS: [(&str, &str, &[Class]); 6] = [
    ("eats", "come", &[Class::Food]),
    ("sees", "ve", &[Class::Animate, Class::Food, Class::Thing]),
    (
        "likes",
        "quiere",
        &[Class::Animate, Class::Food, Class::Thing],
    ),
    ("throws", "lanza", &[Class::Thing, Class::Food]),
    ("chases", "persigue", &[Class::Animate]),
    ("finds", "encuentra", &[Class::Food, Class::Thing]),
];

struct Vocab {
    words: Vec<String>,
    lang: Vec<Option<Language>>,
}

impl Vocab {
    fn id(&mut self, w: &str, lang: Option<Language>) -> i64 {
        if let Some(i) = self.words.iter().position(|x| x == w) {
            return i as i64;
        }
        self.words.push(w.to_string());
        self.lang.push(lang);
        self.words.len() as i64 - 1
    }
}

impl BilingualCorpus {
    /// Generates the corpus of `config` from `seed`.
    pub fn generate(config: &BilingualConfig, seed: u64) -> Result<Self> {
        if config.sentences == 0 {
            return Err(Error::Invalid(
                "a document needs at least one sentence".into(),
            ));
        }
        let mut v = Vocab {
            words: Vec::new(),
            lang: Vec::new(),
        };
        for w in ["<pad>", "<bos>", "."] {
            v.id(w, None);
        }
        // Fix the vocabulary order up front: A words, then B words.
        let (a, b) = (Some(Language::A), Some(Language::B));
        for w in ["the", "a"] {
            v.id(w, a);
        }
        for (en, _, _, _) in NOUNS {
            v.id(en, a);
        }
        for (en, _, _) in ADJECTIVES {
            v.id(en, a);
        }
        for (en, _, _) in VERBS {
            v.id(en, a);
        }
        for w in ["el", "la", "un", "una"] {
            v.id(w, b);
        }
        for (_, es, _, _) in NOUNS {
            v.id(es, b);
        }
        for (_, m, f) in ADJECTIVES {
            v.id(m, b);
            v.id(f, b);
        }
        for (_, es, _) in VERBS {
            v.id(es, b);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let docs =
            |n: usize, lang: Language, rng: &mut ChaCha8Rng, v: &mut Vocab| -> Vec<Vec<i64>> {
                (0..n)
                    .map(|_| {
                        let mut doc = vec![BOS];
                        for _ in 0..config.sentences {
                            sentence(rng, lang, v, &mut doc);
                        }
                        doc
                    })
                    .collect()
            };
        let train_a = docs(config.train_a, Language::A, &mut rng, &mut v);
        let train_b = docs(config.train_b, Language::B, &mut rng, &mut v);
        let test_a = docs(config.test_per_language, Language::A, &mut rng, &mut v);
        let test_b = docs(config.test_per_language, Language::B, &mut rng, &mut v);
        Ok(Self {
            vocab: v.words,
            token_language: v.lang,
            train_a,
            train_b,
            test_a,
            test_b,
        })
    }

    /// The token ids of `language`'s words (the shared tokens excluded).
    pub fn tokens_of(&self, language: Language) -> Vec<i64> {
        self.token_language
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == Some(language))
            .map(|(i, _)| i as i64)
            .collect()
    }

    /// The text of a document.
    pub fn decode(&self, doc: &[i64]) -> String {
        doc.iter()
            .map(|&t| self.vocab.get(t as usize).map_or("<?>", String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn sentence(rng: &mut ChaCha8Rng, lang: Language, v: &mut Vocab, out: &mut Vec<i64>) {
    let animate: Vec<usize> = (0..NOUNS.len())
        .filter(|&i| NOUNS[i].3 == Class::Animate)
        .collect();
    let subject = *animate.choose(rng).unwrap_or(&0);
    let verb = rng.random_range(0..VERBS.len());
    let objects: Vec<usize> = (0..NOUNS.len())
        .filter(|&i| VERBS[verb].2.contains(&NOUNS[i].3))
        .collect();
    let object = *objects.choose(rng).unwrap_or(&0);
    noun_phrase(rng, lang, v, subject, out);
    let (en, es, _) = VERBS[verb];
    out.push(match lang {
        Language::A => v.id(en, Some(lang)),
        Language::B => v.id(es, Some(lang)),
    });
    noun_phrase(rng, lang, v, object, out);
    out.push(STOP);
}

fn noun_phrase(
    rng: &mut ChaCha8Rng,
    lang: Language,
    v: &mut Vocab,
    noun: usize,
    out: &mut Vec<i64>,
) {
    let definite = rng.random_bool(0.5);
    let adjective = rng
        .random_bool(0.5)
        .then(|| rng.random_range(0..ADJECTIVES.len()));
    let (en, es, feminine, _) = NOUNS[noun];
    let l = Some(lang);
    match lang {
        Language::A => {
            out.push(v.id(if definite { "the" } else { "a" }, l));
            if let Some(a) = adjective {
                out.push(v.id(ADJECTIVES[a].0, l));
            }
            out.push(v.id(en, l));
        }
        Language::B => {
            let det = match (definite, feminine) {
                (true, false) => "el",
                (true, true) => "la",
                (false, false) => "un",
                (false, true) => "una",
            };
            out.push(v.id(det, l));
            out.push(v.id(es, l));
            if let Some(a) = adjective {
                out.push(v.id(
                    if feminine {
                        ADJECTIVES[a].2
                    } else {
                        ADJECTIVES[a].1
                    },
                    l,
                ));
            }
        }
    }
}

/// Documents as a language-model batch: inputs `[n, context]` (the first
/// `context` tokens, padded with [`PAD`]) and targets `[n, context]` (the
/// next tokens, −100 where there is none, so losses ignore them).
pub fn lm_batch(
    docs: &[&[i64]],
    context: usize,
) -> (graft_tensor::tch::Tensor, graft_tensor::tch::Tensor) {
    let n = docs.len();
    let mut inputs = vec![PAD; n * context];
    let mut targets = vec![-100i64; n * context];
    for (i, doc) in docs.iter().enumerate() {
        for j in 0..context.min(doc.len()) {
            inputs[i * context + j] = doc[j];
            if j + 1 < doc.len() {
                targets[i * context + j] = doc[j + 1];
            }
        }
    }
    let shape = [n as i64, context as i64];
    (
        graft_tensor::tch::Tensor::from_slice(&inputs).reshape(shape),
        graft_tensor::tch::Tensor::from_slice(&targets).reshape(shape),
    )
}
