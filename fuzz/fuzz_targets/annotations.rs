//! Annotation values (snippets included) on Ingresses written in a small line format that
//! keeps every byte of a value as the fuzzer chose it (no YAML quoting in the way):
//!
//! ```text
//! host: a.test                   a rule for this host (each `host:` starts a rule)
//! path: /api Prefix svc:80       a path of the current rule: PATH [TYPE [SERVICE[:PORT]]]
//! tls: a.test,b.test tls         a TLS entry: HOSTS [SECRET]
//! class: sluice                  spec.ingressClassName
//! default: svc:80                spec.defaultBackend
//! configmap.KEY: VALUE           a key of the controller ConfigMap
//! rewrite-target: /$2            any other key: an annotation under
//!                                nginx.ingress.kubernetes.io/, unless the key has a `/`
//!  more lines                    a line starting with a space or tab continues the value
//! ---                            starts the next Ingress (older ones win conflicts)
//! ```
//!
//! An Ingress without any `path:` gets `a.test` `/` `Prefix`, so that its annotations are
//! compiled into a route. The store is then translated and served as in the `ingress` target.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use sluice_fuzz::{base_store, translate_and_serve, CONFIGMAP};

const PREFIX: &str = "nginx.ingress.kubernetes.io/";

#[derive(Default)]
struct Ingress {
    annotations: BTreeMap<String, String>,
    rules: Vec<(Option<String>, Vec<Value>)>,
    tls: Vec<Value>,
    class: Option<String>,
    default_backend: Option<Value>,
}

/// `SERVICE[:PORT]` as an Ingress backend; the port a number or a name.
fn backend(text: Option<&str>) -> Value {
    let text = text.unwrap_or("svc:80");
    let (name, port) = text.split_once(':').unwrap_or((text, "80"));
    let port = match port.parse::<i64>() {
        Ok(number) => json!({"number": number}),
        Err(_) => json!({"name": port}),
    };
    json!({"service": {"name": name, "port": port}})
}

impl Ingress {
    fn set(&mut self, key: &str, value: &str, configmap: &mut BTreeMap<String, String>) {
        match key {
            "host" => self.rules.push((Some(value.to_owned()), Vec::new())),
            "path" => {
                let mut words = value.split(' ');
                let path = words.next().unwrap_or_default();
                let path_type = words.next().unwrap_or("Prefix");
                let backend = backend(words.next());
                if self.rules.is_empty() {
                    self.rules.push((None, Vec::new()));
                }
                if let Some((_, paths)) = self.rules.last_mut() {
                    paths.push(json!({"path": path, "pathType": path_type, "backend": backend}));
                }
            }
            "tls" => {
                let (hosts, secret) = value.split_once(' ').unwrap_or((value, "tls"));
                self.tls.push(json!({"hosts": hosts.split(',').collect::<Vec<_>>(), "secretName": secret}));
            }
            "class" => self.class = Some(value.to_owned()),
            "default" => self.default_backend = Some(backend(Some(value))),
            _ => {
                if let Some(key) = key.strip_prefix("configmap.") {
                    configmap.insert(key.to_owned(), value.to_owned());
                } else if key.contains('/') {
                    self.annotations.insert(key.to_owned(), value.to_owned());
                } else {
                    self.annotations.insert(format!("{PREFIX}{key}"), value.to_owned());
                }
            }
        }
    }

    fn to_json(&self, index: usize) -> Value {
        let mut rules: Vec<Value> = Vec::new();
        for (host, paths) in &self.rules {
            let mut rule = json!({});
            if let Some(host) = host {
                rule["host"] = json!(host);
            }
            if !paths.is_empty() {
                rule["http"] = json!({"paths": paths});
            }
            rules.push(rule);
        }
        if !self.rules.iter().any(|(_, paths)| !paths.is_empty()) {
            rules.push(json!({"host": "a.test", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend(None)}]}}));
        }
        let mut spec = json!({"rules": rules});
        if !self.tls.is_empty() {
            spec["tls"] = json!(self.tls);
        }
        if let Some(class) = &self.class {
            spec["ingressClassName"] = json!(class);
        }
        if let Some(backend) = &self.default_backend {
            spec["defaultBackend"] = backend.clone();
        }
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": format!("ingress-{index}"),
                "namespace": "default",
                "creationTimestamp": format!("2024-01-01T00:00:{:02}Z", index % 60),
                "annotations": self.annotations,
            },
            "spec": spec,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut ingresses = vec![Ingress::default()];
    let mut configmap = BTreeMap::new();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line == "---" {
            ingresses.push(Ingress::default());
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        while let Some(more) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            value.push('\n');
            value.push_str(&more[1..]);
        }
        if let Some(ingress) = ingresses.last_mut() {
            ingress.set(key.trim(), &value, &mut configmap);
        }
    }
    let mut items: Vec<Value> = ingresses.iter().enumerate().map(|(i, ingress)| ingress.to_json(i)).collect();
    if !configmap.is_empty() {
        items.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP.1, "namespace": CONFIGMAP.0},
            "data": configmap,
        }));
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let Ok((objects, _)) = sluice_manifests::decode_documents(&list, true) else {
        return;
    };
    let mut store = base_store().clone();
    for object in objects {
        store.insert(object);
    }
    translate_and_serve(&store);
});
