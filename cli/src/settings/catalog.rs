//! The list of `hongyan serve` settings, read from the two structs that define them: each
//! field's serde name, doc comment (from the struct's JSON schema) and default value (the
//! struct's `Default`, serialized).

use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::Value;

use super::{ProcessSettings, serve_defaults};

/// One setting, as its flag, environment variable and TOML key show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The TOML key, e.g. `tcp_addr`.
    pub key: &'static str,
    /// The help text: the field's doc comment without its `[default: …]`.
    pub help: String,
    /// The default: the default value as written in TOML, or what the doc comment's closing
    /// `[default: …]` says when the default is none.
    pub default: String,
    /// The name of the value in `--help` (`ADDR`, `N`, …); `None` for a switch (a boolean
    /// setting, turned on by its bare flag).
    pub value_name: Option<String>,
    /// Whether the value is a secret, never shown (`--help` hides its environment value).
    /// A secret is a field that is never serialized.
    pub secret: bool,
    /// Whether the default is a value, written in TOML as `default` (rather than none, which
    /// `default` explains).
    pub valued: bool,
    /// Whether the doc comment closes with a `[default: …]`.
    stated: bool,
}

impl Setting {
    /// The flag without its dashes: the key in kebab case, e.g. `tcp-addr`.
    pub fn long(&self) -> String {
        self.key.replace('_', "-")
    }

    /// The flag, e.g. `--tcp-addr`.
    pub fn flag(&self) -> String {
        format!("--{}", self.long())
    }

    /// The environment variable, e.g. `HONGYAN_TCP_ADDR`.
    pub fn env(&self) -> String {
        format!("HONGYAN_{}", self.key.to_ascii_uppercase())
    }
}

/// Every setting of `hongyan serve`: [`Config`](hongyan_server::Config)'s in declaration order (with `serve`'s
/// defaults), then [`ProcessSettings`]'s.
pub fn catalog() -> &'static [Setting] {
    static CATALOG: LazyLock<Vec<Setting>> = LazyLock::new(|| {
        let mut settings = describe(&serve_defaults());
        settings.extend(describe(&ProcessSettings::default()));
        settings
    });
    &CATALOG
}

/// The settings of `T`, whose defaults are `defaults`.
fn describe<T: JsonSchema + Serialize + DeserializeOwned>(defaults: &T) -> Vec<Setting> {
    let schema = schemars::schema_for!(T);
    let defaults = serde_json::to_value(defaults).unwrap_or(Value::Null);
    field_names::<T>()
        .iter()
        .map(|&key| {
            let property = schema
                .get("properties")
                .and_then(|p| p.get(key))
                .unwrap_or(&Value::Null);
            let text = |name: &str| property.get(name).and_then(Value::as_str);
            let doc = paragraphs(text("description").unwrap_or_default());
            let (help, stated) = split_default(&doc);
            let value = defaults.get(key).unwrap_or(&Value::Null);
            let default = match (value, stated) {
                (Value::Null, stated) => stated.unwrap_or("none").to_owned(),
                (Value::String(s), _) => s.clone(),
                (value, _) => value.to_string(),
            };
            let is_integer = match property.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            let value_name = (!value.is_boolean()).then(|| {
                text("value_name").map_or_else(|| value_name(key, is_integer), str::to_owned)
            });
            Setting {
                key,
                help: help.to_owned(),
                default,
                value_name,
                secret: property.get("writeOnly") == Some(&Value::Bool(true)),
                valued: !value.is_null(),
                stated: stated.is_some(),
            }
        })
        .collect()
}

/// A doc comment with its lines joined into paragraphs, as `--help` prints it.
fn paragraphs(doc: &str) -> String {
    doc.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Splits a closing `[default: …]` off a doc comment.
fn split_default(doc: &str) -> (&str, Option<&str>) {
    doc.trim_end()
        .strip_suffix(']')
        .and_then(|rest| rest.rsplit_once("[default: "))
        .map_or((doc.trim_end(), None), |(help, default)| {
            (help.trim_end(), Some(default))
        })
}

/// The value name a setting gets unless its field names one (`extend("value_name" = …)`):
/// a unit for durations (`_ms`, `_secs`), `N` for other numbers, else the key's last word
/// (`tcp_addr` → `ADDR`).
fn value_name(key: &str, is_integer: bool) -> String {
    let last = key.rsplit('_').next().unwrap_or(key);
    match (is_integer, last) {
        (true, "ms" | "secs") | (false, _) => last.to_ascii_uppercase(),
        (true, _) => "N".to_owned(),
    }
}

/// The serde names of `T`'s fields in declaration order, as its derived `Deserialize` asks
/// for them. (Its JSON schema has them too, but sorted by name.)
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    /// A deserializer that only records the field names a struct asks for.
    struct FieldNames(Option<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for &mut FieldNames {
        type Error = de::value::Error;

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("only the field names were wanted"))
        }

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut names = FieldNames(None);
    let _ = T::deserialize(&mut names);
    names.0.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use hongyan_server::Config;

    use super::*;

    #[test]
    fn every_setting_has_help_a_default_and_a_distinct_key() {
        let settings = catalog();
        assert!(settings.len() > 20, "{settings:#?}");
        for s in settings {
            assert!(!s.help.is_empty(), "{}: no doc comment", s.key);
            assert!(!s.default.is_empty(), "{}: no default", s.key);
            assert!(s.help.ends_with('.'), "{}: {:?}", s.key, s.help);
            assert_eq!(
                settings.iter().filter(|t| t.key == s.key).count(),
                1,
                "{}",
                s.key
            );
        }
    }

    #[test]
    fn a_default_is_stated_in_the_doc_exactly_when_the_value_is_none() {
        for s in catalog() {
            assert_ne!(
                s.stated, s.valued,
                "{}: a default that has a value is rendered from it; one that is none says \
                 what that means in a closing `[default: …]`",
                s.key
            );
        }
    }

    #[test]
    fn flags_and_variables_follow_from_the_key() {
        let tcp = catalog().iter().find(|s| s.key == "tcp_addr").unwrap();
        assert_eq!(
            (tcp.flag(), tcp.env(), tcp.default.as_str()),
            (
                "--tcp-addr".into(),
                "HONGYAN_TCP_ADDR".into(),
                "0.0.0.0:8901"
            )
        );
        assert_eq!(tcp.value_name.as_deref(), Some("ADDR"));
        let by_key = |key| catalog().iter().find(|s| s.key == key).unwrap();
        assert_eq!(by_key("server_timestamp").value_name, None);
        assert_eq!(by_key("max_connections").value_name.as_deref(), Some("N"));
        assert_eq!(
            by_key("webhook_timeout_ms").value_name.as_deref(),
            Some("MS")
        );
        assert_eq!(
            by_key("max_frame_body").value_name.as_deref(),
            Some("BYTES")
        );
        assert!(by_key("admin_token").secret && !by_key("webhook_url").secret);
    }

    #[test]
    fn field_names_come_in_declaration_order_with_serde_names() {
        let names = field_names::<Config>();
        assert_eq!(names[..3], ["tcp_addr", "udp_addr", "http_addr"]);
        assert!(names.contains(&"slow_consumer_secs") && !names.contains(&"s2c_schedule"));
        assert_eq!(
            field_names::<ProcessSettings>(),
            ["workers", "state_dir", "tls_self_signed"]
        );
    }
}
