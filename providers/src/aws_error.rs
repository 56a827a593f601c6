//! AWS SDK errors in one line an operator can act on: the call, the cause, and what to check. The
//! SDK's own rendering ends in a Debug dump of its internals (hundreds of characters of
//! `DispatchFailure(ConnectorError { … })`, or every credential provider it tried).

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What went wrong with `what` (an API call), in one line.
pub fn one_line<E, R>(what: &str, e: &SdkError<E, R>, endpoint: Option<&str>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let causes = causes(e);
    let offline = "or review offline with --world FILE";
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(code), Some(message)) => format!("{what}: {code}: {message}"),
                (Some(code), None) => format!("{what}: {code}"),
                _ => format!("{what}: {}", causes.join(": ")),
            }
        }
        _ if causes.iter().any(|c| c.contains("no credentials")) => format!(
            "{what}: no AWS credentials found (environment, profile, web identity, container or instance role): set AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, {offline}"
        ),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
            "{what}: cannot reach {}: {}; check --endpoint-url (AWS_ENDPOINT_URL), the region and the network, {offline}",
            endpoint.unwrap_or("the region's AWS endpoint"),
            causes.last().map_or("no answer", String::as_str)
        ),
        _ => format!("{what}: {}", causes.join(": ")),
    }
}

/// The error's chain of causes, each by its Display, first line only, repeats dropped.
fn causes(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let line = err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if !line.is_empty() && !out.iter().any(|o| o.contains(&line)) {
            out.push(line);
        }
        next = err.source();
    }
    out
}
