//! The commands that work on the data directory itself, running daemon or not: `seed --words`
//! and `init`.

use std::path::Path;

use bitcoin::Network;
use lightfilter::api::render;
use lightfilter::node::NodeError;

use super::output::{Failure, Reply};

/// `seed --words`: the seed file read directly, so a running daemon is not needed.
pub fn seed_words(data_dir: &Path) -> Result<Reply, Failure> {
    let words = lightfilter::node::seed_words_of(data_dir).map_err(node_failure)?;
    eprintln!("{}", render::SEED_WARNING);
    Ok(Reply::new(
        &serde_json::json!({ "words": words }),
        render::seed_words(&words),
    ))
}

/// `init --words-file FILE`: a new data directory whose seed is the words' (from standard
/// input when FILE is `-` or not given).
pub fn init_from_words(
    data_dir: &Path,
    network: Network,
    words_file: Option<&Path>,
) -> Result<Reply, Failure> {
    let words = match words_file {
        Some(path) if path != Path::new("-") => std::fs::read_to_string(path)
            .map_err(|err| Failure::invalid(format!("cannot read {}: {err}", path.display())))?,
        _ => std::io::read_to_string(std::io::stdin())
            .map_err(|err| Failure::invalid(format!("cannot read standard input: {err}")))?,
    };
    let node_id =
        lightfilter::node::init_from_words(data_dir, network, &words).map_err(node_failure)?;
    Ok(Reply::new(
        &serde_json::json!({ "node_id": node_id.to_string(), "data_dir": data_dir }),
        render::initialized(data_dir, &node_id.to_string()),
    ))
}

fn node_failure(err: NodeError) -> Failure {
    Failure::new(err.code(), err.to_string())
}
