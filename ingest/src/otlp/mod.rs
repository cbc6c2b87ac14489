//! OTLP profiles ingest (v1development as of OTLP 1.8): an `ExportProfilesServiceRequest` becomes
//! one pprof per (resource, scope, profile, service name), with the series labels Pyroscope gives
//! OTLP profiles. The distributor stores them like any other pprof.

mod dictionary;
mod profile;
mod series_labels;
#[cfg(test)]
mod tests;

use flamedb_proto::google::v1::Profile;
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;

use dictionary::Dictionary;

pub use dictionary::IndexError;
pub use profile::ConvertError;

/// Why a request was refused. Every variant is the client's fault (OTLP `InvalidArgument`).
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("missing profile metadata dictionary")]
    MissingDictionary,
    #[error("missing resource profiles")]
    MissingResourceProfiles,
    #[error("failed to convert otel profile: {0}")]
    Convert(#[from] ConvertError),
}

/// One converted profile: the series labels it is pushed with and the pprof itself.
#[derive(Debug, Clone)]
pub struct OtlpProfile {
    pub labels: Vec<(String, String)>,
    pub profile: Profile,
}

/// Converts a whole request. Fails on the first malformed profile, before anything is stored, so
/// a refused request never leaves half of itself behind.
pub fn convert_request(req: &ExportProfilesServiceRequest, now_nanos: i64) -> Result<Vec<OtlpProfile>, OtlpError> {
    let dict = req.dictionary.as_ref().ok_or(OtlpError::MissingDictionary)?;
    if req.resource_profiles.is_empty() {
        return Err(OtlpError::MissingResourceProfiles);
    }
    let dict = Dictionary::new(dict);
    let mut out = Vec::new();
    for rp in &req.resource_profiles {
        let resource_attrs = rp.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let resource_service = series_labels::resource_service_name(resource_attrs);
        for sp in &rp.scope_profiles {
            let scope_attrs = sp.scope.as_ref().map_or(&[][..], |s| &s.attributes[..]);
            for p in &sp.profiles {
                for converted in profile::convert(p, &dict, now_nanos)? {
                    let service = if converted.service.is_empty() { &resource_service } else { &converted.service };
                    let labels = series_labels::build(&converted.name, resource_attrs, scope_attrs, service);
                    out.push(OtlpProfile { labels, profile: converted.profile });
                }
            }
        }
    }
    Ok(out)
}
