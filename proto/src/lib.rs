//! Wire types of the Pyroscope API, generated from our own .proto files (written from the field
//! tables of the API contract). One message set serves tonic (gRPC, gRPC-Web), Connect (binary and
//! proto3 JSON through pbjson) and flamedb's plan codec, so there is never a second copy of a type.

#![allow(clippy::all, missing_docs, rustdoc::all)]

pub mod google {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/google.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/google.v1.serde.rs"));
    }
}

pub mod types {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/types.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/types.v1.serde.rs"));
    }
}

pub mod push {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/push.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/push.v1.serde.rs"));
    }
}

pub mod querier {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/querier.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/querier.v1.serde.rs"));
    }
}

/// flamedb's own messages: physical-plan nodes for the extension codec and the ingester's
/// write-ahead log record (`WalRecord`).
pub mod flamedb {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/flamedb.v1.rs"));
    }
}

/// OTLP messages (OpenTelemetry's protocol) for the profiles signal, v1development as of OTLP 1.8:
/// `ProfilesService/Export` and the OTLP/HTTP body of `POST /v1development/profiles`.
pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.common.v1.rs"));
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.common.v1.serde.rs"));
            }
        }
        pub mod resource {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.resource.v1.rs"));
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.resource.v1.serde.rs"));
            }
        }
        pub mod profiles {
            pub mod v1development {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.profiles.v1development.rs"));
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.profiles.v1development.serde.rs"));
            }
        }
        pub mod collector {
            pub mod profiles {
                pub mod v1development {
                    include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.collector.profiles.v1development.rs"));
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.profiles.v1development.serde.rs"
                    ));
                }
            }
        }
    }
}

/// Per-tenant key/value settings (`settings.v1.SettingsService`), where Grafana Profiles
/// Drilldown keeps its preferences.
pub mod settings {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/settings.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/settings.v1.serde.rs"));
    }
}

/// The feature flags a server announces (`capabilities.v1.FeatureFlagsService`).
pub mod capabilities {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/capabilities.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/capabilities.v1.serde.rs"));
    }
}

/// The encoded `FileDescriptorSet` of every message above (for reflection and tests).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

#[cfg(test)]
mod tests {
    use super::querier::v1::{FlameGraph, Level, SelectMergeStacktracesRequest};
    use super::types::v1::ProfileType;

    #[test]
    fn json_uses_lower_camel_case_and_int64_strings() {
        let fg = FlameGraph {
            names: vec!["total".into()],
            levels: vec![Level { values: vec![0, 5, 0, 0] }],
            total: 5,
            max_self: 0,
        };
        let v: serde_json::Value = serde_json::to_value(&fg).unwrap();
        assert_eq!(v["total"], "5");
        assert!(v.get("maxSelf").is_none(), "zero fields are omitted: {v}");
        assert_eq!(v["levels"][0]["values"][1], "5");

        let pt = ProfileType { id: "a:b:c:d:e".into(), ..Default::default() };
        let v = serde_json::to_value(&pt).unwrap();
        assert_eq!(v["ID"], "a:b:c:d:e");
    }

    #[test]
    fn json_accepts_both_field_names_numbers_and_strings() {
        let a: SelectMergeStacktracesRequest = serde_json::from_str(
            r#"{"profileTypeID":"x","label_selector":"{}","start":"1","end":2,"maxNodes":7,"unknownField":1}"#,
        )
        .unwrap();
        assert_eq!(a.profile_type_id, "x");
        assert_eq!(a.label_selector, "{}");
        assert_eq!((a.start, a.end, a.max_nodes), (1, 2, Some(7)));
        let b: SelectMergeStacktracesRequest =
            serde_json::from_str(r#"{"profile_typeID":"y","start":"now-1h"}"#).unwrap_or_default();
        assert_eq!(b.profile_type_id, "");
    }
}
