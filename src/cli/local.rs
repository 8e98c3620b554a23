//! The commands that work on the data directory itself: `seed --words` and `init` (running
//! daemon or not), and `store copy` (with the daemon stopped).

use std::path::Path;

use bitcoin::Network;
use lightfilter::api::render;
use lightfilter::node::NodeError;

use super::args::StoreCopyArgs;
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

/// `store copy --to URL` / `--from URL`.
pub async fn store_copy(
    data_dir: &Path,
    network: Network,
    args: StoreCopyArgs,
) -> Result<Reply, Failure> {
    use lightfilter::node::CopyDirection;
    let (url, direction) = match (args.to, args.from) {
        (Some(url), None) => (url, CopyDirection::FilesToPostgres),
        (None, Some(url)) => (url, CopyDirection::PostgresToFiles),
        _ => {
            return Err(Failure::invalid(
                "give one of --to URL and --from URL".into(),
            ))
        }
    };
    let report = lightfilter::node::copy_store(data_dir, network, &url, direction)
        .await
        .map_err(node_failure)?;
    Ok(Reply::new(
        &serde_json::json!({
            "node_id": report.node_id,
            "from": report.from,
            "to": report.to,
            "keys": report.keys,
            "bytes": report.bytes,
            "wallet": report.wallet,
        }),
        format!(
            "copied node {} from {} to {}: {} keys ({} bytes) checked byte for byte{}; the \
             source is marked as moved\nstart the daemon {}\n",
            report.node_id,
            report.from,
            report.to,
            report.keys,
            report.bytes,
            if report.wallet {
                ", and the wallet"
            } else {
                ""
            },
            match direction {
                CopyDirection::FilesToPostgres => "with --store URL",
                CopyDirection::PostgresToFiles => "without --store",
            }
        ),
    ))
}

fn node_failure(err: NodeError) -> Failure {
    Failure::new(err.code(), err.to_string())
}
