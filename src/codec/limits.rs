//! Writer schemas this service refuses to decode with. apache-avro decodes recursively with
//! no depth limit: a recursive writer schema (a record that holds itself, like a linked
//! list) with a datum nested a few hundred thousand levels deep overflows the stack and
//! aborts the process, on every instance that reads the record. An array of zero-byte items
//! (`null`, an empty record) lets a 10-byte datum declare billions of items. The model
//! types are neither recursive nor deep, so no schema a real producer uses is refused.

use std::collections::HashSet;

use apache_avro::Schema;

/// Largest writer schema text accepted.
pub(crate) const MAX_SCHEMA_JSON_BYTES: usize = 256 * 1024;
/// Deepest nesting of types (records, arrays, maps, unions) accepted.
pub(crate) const MAX_DEPTH: usize = 32;
/// Most types in one writer schema.
pub(crate) const MAX_TYPES: usize = 10_000;

/// Refuses a writer schema text over [`MAX_SCHEMA_JSON_BYTES`], before parsing it.
pub(crate) fn check_text(json: &str) -> Result<(), String> {
    if json.len() > MAX_SCHEMA_JSON_BYTES {
        return Err(format!(
            "its text is {} bytes, more than {MAX_SCHEMA_JSON_BYTES}",
            json.len()
        ));
    }
    Ok(())
}

/// Refuses a `size`, `precision` or `scale` that is not an integer (or a string holding
/// one), anywhere in the schema: apache-avro 0.22 parses such a schema and then panics
/// computing its canonical form (found by the `writer_schema` fuzz target).
pub(crate) fn check_integer_attributes(json: &str) -> Result<(), String> {
    // Text that is not JSON is left to the Avro parser, which says why.
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return Ok(());
    };
    let mut stack = vec![&value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let integer =
                        v.is_i64() || v.as_str().is_some_and(|s| s.parse::<i64>().is_ok());
                    if matches!(k.as_str(), "size" | "precision" | "scale") && !integer {
                        return Err(format!("\"{k}\" must be an integer, got {v}"));
                    }
                    stack.push(v);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a parsed schema whose canonical form apache-avro 0.22 cannot compute: it panics
/// (instead of returning an error) when one of the keys the canonical form walks (`type`,
/// `fields`, `items`, ...) holds a number, a boolean or null, which a custom attribute of that
/// name can (found by the `writer_schema` fuzz target: `{"type": "map", "values": "string",
/// "fields": 0}`). The walk mirrors the canonical form's own, on the schema as it serializes.
pub(crate) fn check_canonical_form(schema: &Schema) -> Result<(), String> {
    /// The keys whose values the canonical form parses as schemas again.
    const WALKED: [&str; 7] = [
        "name", "type", "fields", "symbols", "items", "values", "order",
    ];
    let json = serde_json::to_value(schema).map_err(|e| format!("it does not serialize: {e}"))?;
    let mut stack = vec![(&json, String::from("the schema"))];
    while let Some((value, at)) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map.iter().filter(|(k, _)| WALKED.contains(&k.as_str())) {
                    stack.push((inner, format!("\"{key}\"")));
                }
            }
            serde_json::Value::Array(items) => {
                stack.extend(items.iter().map(|item| (item, at.clone())));
            }
            serde_json::Value::String(_) => {}
            other => {
                return Err(format!(
                    "{at} must be a name, a schema or a list of them, got {other}"
                ))
            }
        }
    }
    Ok(())
}

/// Refuses a recursive schema, one nested deeper than [`MAX_DEPTH`], one with more than
/// [`MAX_TYPES`] types, and arrays or maps of zero-byte items.
pub(crate) fn check(schema: &Schema) -> Result<(), String> {
    let mut walk = Walk {
        types: 0,
        open: HashSet::new(),
    };
    walk.visit(schema, 0)
}

struct Walk {
    types: usize,
    /// Full names of the named types being walked: a reference to one is a recursion.
    open: HashSet<String>,
}

impl Walk {
    fn visit(&mut self, schema: &Schema, depth: usize) -> Result<(), String> {
        self.types += 1;
        if self.types > MAX_TYPES {
            return Err(format!("it has more than {MAX_TYPES} types"));
        }
        if depth > MAX_DEPTH {
            return Err(format!("it nests types deeper than {MAX_DEPTH} levels"));
        }
        match schema {
            Schema::Ref { name } => {
                let name = name.fullname(None);
                if self.open.contains(&name) {
                    return Err(format!("it is recursive ({name} contains itself)"));
                }
                Ok(())
            }
            Schema::Record(r) => {
                let name = r.name.fullname(None);
                self.open.insert(name.clone());
                for f in &r.fields {
                    self.visit(&f.schema, depth + 1)?;
                }
                self.open.remove(&name);
                Ok(())
            }
            Schema::Array(a) => self.items(&a.items, depth, "an array"),
            Schema::Map(m) => self.items(&m.types, depth, "a map"),
            Schema::Union(u) => u
                .variants()
                .iter()
                .try_for_each(|v| self.visit(v, depth + 1)),
            _ => Ok(()),
        }
    }

    fn items(&mut self, items: &Schema, depth: usize, what: &str) -> Result<(), String> {
        if zero_sized(items) {
            return Err(format!(
                "{what} of zero-byte items lets a tiny datum hold billions of them"
            ));
        }
        self.visit(items, depth + 1)
    }
}

/// Types whose values take no bytes on the wire.
fn zero_sized(schema: &Schema) -> bool {
    match schema {
        Schema::Null => true,
        Schema::Record(r) => r.fields.iter().all(|f| zero_sized(&f.schema)),
        Schema::Fixed(f) => f.size == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> String {
        check(&Schema::parse_str(json).unwrap()).unwrap_err()
    }

    #[test]
    fn every_embedded_schema_passes() {
        for e in crate::codec::EMBEDDED {
            let schema = Schema::parse_str(e.json).unwrap();
            assert_eq!(check(&schema), Ok(()), "{}", e.name);
        }
    }

    #[test]
    fn recursion_depth_and_zero_byte_items_are_refused() {
        let list =
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#;
        assert!(refused(list).contains("recursive"), "{}", refused(list));
        let mut deep = String::from(r#""int""#);
        for _ in 0..40 {
            deep = format!(r#"{{"type":"array","items":{deep}}}"#);
        }
        assert!(refused(&deep).contains("deeper"));
        assert!(refused(r#"{"type":"array","items":"null"}"#).contains("zero-byte"));
        let empty = r#"{"type":"map","values":{"type":"record","name":"E","fields":[]}}"#;
        assert!(refused(empty).contains("zero-byte"));
        assert!(check_text(&" ".repeat(MAX_SCHEMA_JSON_BYTES + 1)).is_err());
        for bad in [
            r#"{"type":"fixed","name":"F","size":"x"}"#,
            r#"{"type":"string","precision":1.5}"#,
        ] {
            assert!(
                check_integer_attributes(bad)
                    .unwrap_err()
                    .contains("must be an integer"),
                "{bad}"
            );
        }
        assert_eq!(
            check_integer_attributes(r#"{"type":"fixed","name":"F","size":"16"}"#),
            Ok(())
        );
        // A named type used twice, not inside itself, is fine.
        let twice = r#"{"type":"record","name":"R","fields":[
            {"name":"a","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}},
            {"name":"b","type":"P"}]}"#;
        assert_eq!(check(&Schema::parse_str(twice).unwrap()), Ok(()));
    }
}
