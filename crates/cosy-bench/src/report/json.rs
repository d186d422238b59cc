//! Records as JSON lines: one flat object per record, `workload` and `variant` first.

use std::io::Write;

use serde_json::{Map, Value};

use crate::framework::{Record, Sink};

impl Record {
    /// The record as one flat JSON object: `workload`, `variant`, `median_s` (absent for
    /// per-operation records and skipped variants), `runs`, `skipped` (if skipped), then the
    /// parameters. Keys keep this order in [`Record::to_json_line`].
    pub fn to_json(&self) -> Value {
        Value::Object(self.fields().into_iter().collect::<Map<String, Value>>())
    }

    /// The record as one line of JSON (no newline), keys in the order of [`Record::to_json`].
    pub fn to_json_line(&self) -> String {
        let parts: Vec<String> = self
            .fields()
            .into_iter()
            .map(|(k, v)| format!("{}:{}", Value::String(k), v))
            .collect();
        format!("{{{}}}", parts.join(","))
    }

    fn fields(&self) -> Vec<(String, Value)> {
        let mut out = vec![
            ("workload".to_string(), Value::from(self.workload.clone())),
            ("variant".to_string(), Value::from(self.variant.clone())),
        ];
        if let Some(m) = self.median_s {
            out.push(("median_s".into(), Value::from(m)));
        }
        out.push(("runs".into(), Value::from(self.runs)));
        if let Some(s) = &self.skipped {
            out.push(("skipped".into(), Value::from(s.clone())));
        }
        for (k, v) in &self.params {
            out.push((k.clone(), v.clone()));
        }
        out
    }
}

/// A [`Sink`] writing each record as a JSON line as soon as it is measured (notes are not
/// written: they are in the records' `skipped` and `mismatch` fields).
#[derive(Debug)]
pub struct JsonLines<W: Write>(pub W);

impl<W: Write> Sink for JsonLines<W> {
    fn record(&mut self, record: &Record) {
        // A closed pipe (`| head`) must not stop the benchmark.
        let _ = writeln!(self.0, "{}", record.to_json_line());
        let _ = self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn record() -> Record {
        let mut params = BTreeMap::new();
        params.insert("cache".to_string(), Value::from("cold"));
        params.insert("files".to_string(), Value::from(5000));
        Record {
            workload: "ls-5k".into(),
            variant: "ring".into(),
            median_s: Some(0.25),
            params,
            runs: 5,
            skipped: None,
        }
    }

    #[test]
    fn a_record_is_one_flat_object_workload_first() {
        let line = record().to_json_line();
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(r#"{"workload":"ls-5k","variant":"ring","median_s":0.25"#),
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v, record().to_json());
        assert_eq!(v["cache"], "cold");
        assert_eq!(v["files"], 5000);
        assert_eq!(v["runs"], 5);
        assert!(v.get("skipped").is_none());
    }

    #[test]
    fn burst_records_carry_ns_per_op_and_no_median() {
        let mut r = record();
        r.workload = "burst".into();
        r.median_s = None;
        r.params.clear();
        r.params.insert("op".into(), "nop".into());
        r.params.insert("n".into(), 64.into());
        r.params.insert("ns_per_op".into(), 101.5.into());
        let v: Value = serde_json::from_str(&r.to_json_line()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["workload", "variant", "op", "n", "ns_per_op"] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(v.get("median_s").is_none());
    }

    #[test]
    fn counts_are_extra_fields() {
        let mut r = record();
        crate::framework::Counts {
            syscalls: 3,
            enters: 12,
            ring_ops: 2048,
            executor: Some("ring".into()),
            ..Default::default()
        }
        .insert_into(&mut r.params);
        let line = r.to_json_line();
        assert!(
            line.starts_with(r#"{"workload":"ls-5k","variant":"ring","median_s":0.25"#),
            "{line}"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["syscalls"], 3);
        assert_eq!(v["enters"], 12);
        assert_eq!(v["ring_ops"], 2048);
        assert_eq!(v["executor"], "ring");
        assert_eq!(v["cache"], "cold");
        assert_eq!(r.case_key(), record().case_key());
    }

    #[test]
    fn skipped_records_say_why() {
        let mut r = record();
        r.median_s = None;
        r.runs = 0;
        r.skipped = Some("rg is not installed".into());
        let v: Value = serde_json::from_str(&r.to_json_line()).unwrap();
        assert_eq!(v["skipped"], "rg is not installed");
        let mut out = Vec::new();
        JsonLines(&mut out).record(&r);
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }
}
