//! The node's 32-byte seed written as 24 words (a BIP 39 mnemonic in English), so it can be
//! copied by hand and typed back in.
//!
//! The words encode the seed file's 32 bytes themselves (they are the mnemonic's entropy);
//! they are not run through BIP 39's passphrase derivation, so another wallet given these
//! words would derive other keys. Only lightfilter reads them back.

use bip39::{Language, Mnemonic};

/// The number of words of a 32-byte seed.
pub const SEED_WORDS: usize = 24;

/// Why words could not be read as a seed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedWordsError {
    /// Not 24 words.
    #[error("expected {SEED_WORDS} words, found {0}")]
    WordCount(usize),
    /// A word that is not in the BIP 39 English word list.
    #[error("word {position} ({word:?}) is not in the BIP 39 English word list")]
    UnknownWord {
        /// Its position, from 1.
        position: usize,
        /// The word.
        word: String,
    },
    /// The words do not carry a valid checksum (a word was mistyped or the order is wrong).
    #[error("the words' checksum does not match: a word is wrong or out of order")]
    Checksum,
}

/// The 24 words of `seed`, separated by spaces.
pub fn seed_to_words(seed: &[u8; 32]) -> String {
    Mnemonic::from_entropy_in(Language::English, seed)
        .expect("32 bytes is a valid BIP 39 entropy length")
        .to_string()
}

/// The seed written as `text`: 24 words separated by any white space, in any letter case,
/// optionally numbered (`1.`, `2)` or `3` before a word, as `seed --words` prints them).
pub fn words_to_seed(text: &str) -> Result<[u8; 32], SeedWordsError> {
    let words: Vec<String> = text
        .split_whitespace()
        .filter(|token| {
            let number = token.trim_end_matches(['.', ')']);
            number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_lowercase)
        .collect();
    if words.len() != SEED_WORDS {
        return Err(SeedWordsError::WordCount(words.len()));
    }
    let mnemonic = Mnemonic::parse_in_normalized(Language::English, &words.join(" ")).map_err(
        |err| match err {
            bip39::Error::UnknownWord(index) => SeedWordsError::UnknownWord {
                position: index + 1,
                word: words[index].clone(),
            },
            bip39::Error::BadWordCount(count) => SeedWordsError::WordCount(count),
            _ => SeedWordsError::Checksum,
        },
    )?;
    let (entropy, len) = mnemonic.to_entropy_array();
    entropy[..len]
        .try_into()
        .map_err(|_| SeedWordsError::WordCount(mnemonic.word_count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_to_the_same_seed() {
        for seed in [[0u8; 32], [0xff; 32], core::array::from_fn(|i| i as u8 * 7)] {
            let words = seed_to_words(&seed);
            assert_eq!(words.split(' ').count(), SEED_WORDS);
            assert_eq!(words_to_seed(&words).unwrap(), seed);
            // Line breaks, extra spaces and capitals as a person may write them.
            let written = words.to_uppercase().replace(' ', "\n  ");
            assert_eq!(words_to_seed(&written).unwrap(), seed);
            let numbered: String = words
                .split(' ')
                .enumerate()
                .map(|(i, word)| format!("{}. {word} ", i + 1))
                .collect();
            assert_eq!(words_to_seed(&numbered).unwrap(), seed);
        }
        // The BIP 39 test vector for 32 bytes of zeros.
        assert!(seed_to_words(&[0u8; 32]).ends_with("abandon art"));
    }

    #[test]
    fn bad_words_are_named() {
        let words = seed_to_words(&[7u8; 32]);
        let mut list: Vec<&str> = words.split(' ').collect();
        assert_eq!(
            words_to_seed(&list[..12].join(" ")),
            Err(SeedWordsError::WordCount(12))
        );
        assert_eq!(words_to_seed(""), Err(SeedWordsError::WordCount(0)));
        list[5] = "bitcoinz";
        assert_eq!(
            words_to_seed(&list.join(" ")),
            Err(SeedWordsError::UnknownWord {
                position: 6,
                word: "bitcoinz".into()
            })
        );
        let mut swapped: Vec<&str> = words.split(' ').collect();
        swapped.swap(0, 1);
        if swapped[0] != swapped[1] {
            assert_eq!(
                words_to_seed(&swapped.join(" ")),
                Err(SeedWordsError::Checksum)
            );
        }
    }
}
