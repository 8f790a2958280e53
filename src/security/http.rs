//! The HTTP port's bearer token, from `[http] token` or `AURA_HTTP_TOKEN[_FILE]`.

use super::secret::{from_env, Env, Secret};
use crate::config::{HttpConfig, Problem};

pub const ENV_TOKEN: &str = "AURA_HTTP_TOKEN";

/// The token `/sagas/{id}` requires, if any; the environment wins over the file.
pub fn resolve_token(
    http: &HttpConfig,
    env: Env<'_>,
    problems: &mut Vec<Problem>,
) -> Option<Secret> {
    match from_env(ENV_TOKEN, env) {
        Ok(Some(token)) => return Some(token),
        Ok(None) => {}
        Err(e) => {
            problems.push(Problem::new(ENV_TOKEN, "[redacted]", &e.to_string()));
            return None;
        }
    }
    let source = http.token.as_ref()?;
    source
        .read(env)
        .map_err(|e| problems.push(Problem::new("http.token", source, &e.to_string())))
        .ok()
}
