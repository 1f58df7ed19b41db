//! The vulnerability database as the server keeps it: updated from its
//! sources on a schedule (`update`), pulled as a signed artifact by a
//! disconnected registry (`pull`), and uploaded over HTTP (`upload`). Each
//! makes a new generation the way `portcullis db import` does; the
//! scanner's database watcher loads it and re-matches.

pub(crate) mod pull;
pub(crate) mod update;
pub(crate) mod upload;

pub use pull::PullSettings;
pub use update::UpdateSettings;
pub use upload::VulnDbUpload;
