//! The desktop keyring, through the freedesktop Secret Service API
//! (`org.freedesktop.secrets` on the session bus: GNOME Keyring, KWallet,
//! KeePassXC): where `strand service install --keyring` keeps the
//! passphrase and `--passphrase-keyring` reads it, instead of a file;
//! a passphrase change replaces it (`super::service::update_service_passphrase`).
//!
//! One item per profile, in the default collection, with the attributes
//! `application = strand` and `profile = <the profile's absolute path>`.
//! The secret crosses the session bus in a "plain" session: the bus is
//! this user's own, which is the same trust the keyring's other clients
//! (`secret-tool`, browsers) give it. What keeping it there risks, against
//! a file: `docs/guide/service.md`.

use std::collections::HashMap;
use std::path::Path;

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{ObjectPath, OwnedObjectPath, Value};
use zeroize::Zeroizing;

const SERVICE: &str = "org.freedesktop.secrets";
const PATH: &str = "/org/freedesktop/secrets";
const DEFAULT: &str = "/org/freedesktop/secrets/aliases/default";

/// A secret as the Secret Service passes it: session, parameters, value,
/// content type.
type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

/// Why the keyring did not do it, in words for the user.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// No Secret Service answered on the session bus.
    #[error("no desktop keyring answers on the session bus ({0}): use --passphrase-file instead, or log in to a desktop session")]
    Unreachable(String),
    /// The keyring is locked and unlocking it needs the user.
    #[error(
        "the desktop keyring is locked: unlock it (log in to the desktop session) and try again"
    )]
    Locked,
    /// There is no passphrase for this profile in it.
    #[error("the desktop keyring holds no passphrase for the profile in {0} (`strand service install --keyring` puts one there)")]
    Missing(String),
    /// The keyring refused or failed.
    #[error("the desktop keyring failed: {0}")]
    Failed(String),
}

fn failed(e: zbus::Error) -> KeyringError {
    KeyringError::Failed(e.to_string())
}

/// A connection to the Secret Service with an open session.
struct Keyring {
    conn: Connection,
    session: OwnedObjectPath,
}

impl Keyring {
    fn open() -> Result<Keyring, KeyringError> {
        let conn = Connection::session().map_err(|e| KeyringError::Unreachable(e.to_string()))?;
        let service =
            Proxy::new(&conn, SERVICE, PATH, "org.freedesktop.Secret.Service").map_err(failed)?;
        let (_, session): (zbus::zvariant::OwnedValue, OwnedObjectPath) = service
            .call("OpenSession", &("plain", Value::from("")))
            .map_err(|e| KeyringError::Unreachable(e.to_string()))?;
        Ok(Keyring { conn, session })
    }

    fn proxy<'a>(&'a self, path: &'a str, interface: &'a str) -> Result<Proxy<'a>, KeyringError> {
        Proxy::new(&self.conn, SERVICE, path, interface).map_err(failed)
    }

    /// The items for `profile`, unlocked (asking the keyring to unlock
    /// locked ones; one that needs the user to type is [`KeyringError::Locked`]).
    fn items(&self, profile: &str) -> Result<Vec<OwnedObjectPath>, KeyringError> {
        let service = self.proxy(PATH, "org.freedesktop.Secret.Service")?;
        let (unlocked, locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) = service
            .call("SearchItems", &(attributes(profile),))
            .map_err(failed)?;
        if !unlocked.is_empty() || locked.is_empty() {
            return Ok(unlocked);
        }
        let (now, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) =
            service.call("Unlock", &(locked,)).map_err(failed)?;
        if now.is_empty() || prompt.as_str() != "/" {
            return Err(KeyringError::Locked);
        }
        Ok(now)
    }
}

fn attributes(profile: &str) -> HashMap<&str, &str> {
    HashMap::from([("application", "strand"), ("profile", profile)])
}

fn profile_key(dir: &Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}

/// The passphrase kept for the profile in `dir`.
pub fn passphrase(dir: &Path) -> Result<Zeroizing<String>, KeyringError> {
    let profile = profile_key(dir);
    let keyring = Keyring::open()?;
    let Some(item) = keyring.items(&profile)?.into_iter().next() else {
        return Err(KeyringError::Missing(profile));
    };
    let item = keyring.proxy(item.as_str(), "org.freedesktop.Secret.Item")?;
    let (_, _, value, _): Secret = item
        .call("GetSecret", &(&keyring.session,))
        .map_err(failed)?;
    let value = Zeroizing::new(value);
    let text = std::str::from_utf8(&value)
        .map_err(|_| KeyringError::Failed("the passphrase kept there is not text".into()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Keeps `passphrase` for the profile in `dir` (replacing one kept before).
pub fn store(dir: &Path, passphrase: &str) -> Result<(), KeyringError> {
    let profile = profile_key(dir);
    let keyring = Keyring::open()?;
    let collection = keyring.proxy(DEFAULT, "org.freedesktop.Secret.Collection")?;
    let label = format!("Strand passphrase for {profile}");
    let properties: HashMap<&str, Value<'_>> = HashMap::from([
        (
            "org.freedesktop.Secret.Item.Label",
            Value::from(label.as_str()),
        ),
        (
            "org.freedesktop.Secret.Item.Attributes",
            Value::from(attributes(&profile)),
        ),
    ]);
    let secret = (
        ObjectPath::from(&keyring.session),
        Vec::<u8>::new(),
        passphrase.as_bytes().to_vec(),
        "text/plain",
    );
    let (_, prompt): (OwnedObjectPath, OwnedObjectPath) = collection
        .call("CreateItem", &(properties, secret, true))
        .map_err(|e| match e {
            zbus::Error::MethodError(name, ..) if name.as_str().ends_with("NoSuchObject") => {
                KeyringError::Failed("there is no default keyring".into())
            }
            other => failed(other),
        })?;
    if prompt.as_str() != "/" {
        return Err(KeyringError::Locked);
    }
    Ok(())
}

/// Removes what is kept for the profile in `dir`; whether there was any.
pub fn remove(dir: &Path) -> Result<bool, KeyringError> {
    let profile = profile_key(dir);
    let keyring = Keyring::open()?;
    let items = keyring.items(&profile)?;
    for item in &items {
        let item = keyring.proxy(item.as_str(), "org.freedesktop.Secret.Item")?;
        // A prompt (anything but "/") means it is not deleted until the
        // user confirms it: not removed, as far as anyone can tell now.
        let prompt: OwnedObjectPath = item.call("Delete", &()).map_err(failed)?;
        if prompt.as_str() != "/" {
            return Err(KeyringError::Locked);
        }
    }
    Ok(!items.is_empty())
}
