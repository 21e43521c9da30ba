//! What can go wrong with the store, in terms a user can act on. Messages name accounts and
//! paths, never credentials.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open the database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "the database {path} was written by a newer sluice (schema version {found}, this sluice knows up to {known}); upgrade sluice"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("there is no account named {0:?}")]
    NoSuchAccount(String),
    #[error("an account named {0:?} already exists")]
    NameTaken(String),
    #[error(
        "account {name:?} is declared in the config file; change it there (sluice applies the file when it is saved)"
    )]
    DeclaredInConfig { name: String },
    #[error(
        "account {name:?} is declared in the config file and was also added from the command line; rename one of them (sluice accounts rename {name} NEW-NAME)"
    )]
    NameConflict { name: String },
    #[error("account {name:?} is a {kind} account, not a subscription")]
    NotOAuth { name: String, kind: &'static str },
    #[error("the database holds a record sluice cannot read ({0}); was it edited by hand?")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
}
