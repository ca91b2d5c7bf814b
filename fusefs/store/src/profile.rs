//! AWS shared configuration files: `~/.aws/credentials` and `~/.aws/config`, as the AWS CLI
//! reads them (`object_store` reads only environment variables).
//!
//! The profile is `--profile`, else `AWS_PROFILE`, else `default`. Its keys come from
//! `[NAME]` in the credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`) and `[profile NAME]` (`[default]` for the default profile) in the
//! config file (`AWS_CONFIG_FILE`, default `~/.aws/config`), the credentials file winning.
//! Environment variables win over both (the caller applies the profile only where the
//! environment left a setting unset). Lines are `key = value`; `#` and `;` start comments.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The settings of one profile that a store client uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// `aws_access_key_id`.
    pub access_key_id: Option<String>,
    /// `aws_secret_access_key`.
    pub secret_access_key: Option<String>,
    /// `aws_session_token`.
    pub session_token: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `endpoint_url`.
    pub endpoint_url: Option<String>,
}

/// The sections of an INI file: section name -> key -> value.
fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continue;
        }
        if let (Some(s), Some((k, v))) = (&section, line.split_once('=')) {
            out.entry(s.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

fn home_file(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws").join(name))
}

/// The profile named `name` (or the one the environment names), from the default files.
/// Missing files or sections give an empty profile; an explicitly named profile that exists
/// in neither file is an error.
pub fn load(name: Option<&str>) -> Result<Profile, String> {
    let explicit = name
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()));
    let read = |p: Option<PathBuf>| {
        p.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let creds = read(home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
    let config = read(home_file("AWS_CONFIG_FILE", "config"));
    resolve(explicit.as_deref(), &creds, &config)
}

/// Profile `explicit` (or `default`) from the texts of the credentials and config files.
fn resolve(explicit: Option<&str>, creds: &str, config: &str) -> Result<Profile, String> {
    let name = explicit.unwrap_or("default").to_string();
    let creds = parse_ini(creds);
    let config = parse_ini(config);
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let c = creds.get(&name);
    let f = config.get(&config_section);
    if explicit.is_some() && c.is_none() && f.is_none() {
        return Err(format!(
            "AWS profile {name:?} is in neither ~/.aws/credentials nor ~/.aws/config"
        ));
    }
    let get = |key: &str| {
        c.and_then(|s| s.get(key))
            .or_else(|| f.and_then(|s| s.get(key)))
            .cloned()
    };
    Ok(Profile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: get("region"),
        endpoint_url: get("endpoint_url"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_resolve_like_the_aws_cli() {
        let creds = "[default]\naws_access_key_id=D\naws_secret_access_key=DS\n[work]\naws_access_key_id=W\naws_secret_access_key=WS\naws_session_token=T\n";
        let config = "[default]\nregion=us-east-1\n[profile work]\nregion=eu-west-3\nendpoint_url=http://127.0.0.1:7480\naws_access_key_id=ignored\n";
        let d = resolve(None, creds, config).unwrap();
        assert_eq!(d.access_key_id.as_deref(), Some("D"));
        assert_eq!(d.region.as_deref(), Some("us-east-1"));
        assert_eq!(d.endpoint_url, None);
        let w = resolve(Some("work"), creds, config).unwrap();
        assert_eq!(
            w.access_key_id.as_deref(),
            Some("W"),
            "credentials file wins"
        );
        assert_eq!(w.session_token.as_deref(), Some("T"));
        assert_eq!(w.region.as_deref(), Some("eu-west-3"));
        assert_eq!(w.endpoint_url.as_deref(), Some("http://127.0.0.1:7480"));
        assert!(
            resolve(Some("nope"), creds, config)
                .unwrap_err()
                .contains("nope")
        );
        assert_eq!(resolve(None, "", "").unwrap(), Profile::default());
    }

    #[test]
    fn ini_sections_keys_and_comments() {
        let ini = parse_ini(
            "# c\n[default]\naws_access_key_id = AK\n; c\n[profile x]\nRegion=eu-west-1\nbad line\n",
        );
        assert_eq!(ini["default"]["aws_access_key_id"], "AK");
        assert_eq!(ini["profile x"]["region"], "eu-west-1");
        assert_eq!(ini.len(), 2);
    }
}
