//! Calling the backend: one HTTP client, a bound on concurrent requests, a deadline per
//! attempt, and retries only where a repeat cannot do harm.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::config::WebhookConfig;
use super::endpoint::Endpoint;
use super::metrics::WebhookMetrics;
use crate::metrics::labels::PerValue;

/// Pauses before each retry. Verification and offline hand-off run while a client waits, so
/// they get one quick retry; events are delivered in the background and may wait.
fn backoff(endpoint: Endpoint) -> &'static [Duration] {
    const QUICK: [Duration; 1] = [Duration::from_millis(100)];
    const PATIENT: [Duration; 3] = [
        Duration::from_millis(500),
        Duration::from_secs(2),
        Duration::from_secs(5),
    ];
    match endpoint {
        Endpoint::verify | Endpoint::offline => &QUICK,
        Endpoint::events => &PATIENT,
    }
}

/// Whether a failed attempt is worth repeating. Every endpoint is safe to repeat (a verify
/// answers a question, an offline hand-off and an event carry ids the backend deduplicates
/// by), so this only weighs the wait: a client is waiting on verify and offline, so those are
/// retried only when the backend surely did not act and answers fast, not after a timeout.
fn retry_after(endpoint: Endpoint, error: &WebhookError) -> bool {
    match endpoint {
        Endpoint::events => true,
        Endpoint::verify | Endpoint::offline => match error {
            WebhookError::Connect(_) => true,
            WebhookError::Status(status) => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        },
    }
}

/// Why a webhook call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    /// The backend could not be reached.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No answer within the timeout (including the wait for a free request slot).
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The backend answered with a status other than 2xx.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The request failed otherwise.
    #[error("request failed: {0}")]
    Request(String),
    /// The answer was not the JSON the contract asks for.
    #[error("unexpected answer: {0}")]
    Body(String),
}

/// The HTTP side of the webhooks, shared by the hooks and the event task.
pub(crate) struct Caller {
    http: reqwest::Client,
    urls: PerValue<Endpoint, Url>,
    authorization: Option<HeaderValue>,
    timeout: Duration,
    permits: Semaphore,
    pub(crate) metrics: WebhookMetrics,
}

impl Caller {
    pub(crate) fn new(
        config: &WebhookConfig,
        metrics: WebhookMetrics,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hongyan/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .build()?;
        let base = config.url.as_str().trim_end_matches('/');
        let urls = PerValue::new(|e: Endpoint| {
            Url::parse(&format!("{base}/{}", e.path()))
                .expect("a valid base URL stays valid with a path segment appended")
        });
        let authorization = config.token.as_ref().map(|token| {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .expect("a BearerToken is visible ASCII, which a header value accepts");
            value.set_sensitive(true);
            value
        });
        Ok(Self {
            http,
            urls,
            authorization,
            timeout: config.timeout,
            permits: Semaphore::new(config.concurrency.max(1)),
            metrics,
        })
    }

    /// POSTs `body` as JSON to `endpoint`, retrying per the endpoint's policy; returns the
    /// response body of the first 2xx answer.
    pub(crate) async fn post(
        &self,
        endpoint: Endpoint,
        body: &impl Serialize,
    ) -> Result<Bytes, WebhookError> {
        let body = Bytes::from(
            serde_json::to_vec(body).map_err(|e| WebhookError::Request(e.to_string()))?,
        );
        let mut backoff = backoff(endpoint).iter();
        loop {
            let error = match self.attempt(endpoint, body.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            match backoff.next() {
                Some(pause) if retry_after(endpoint, &error) => {
                    tracing::debug!(endpoint = endpoint.path(), %error, "webhook attempt failed; retrying");
                    self.metrics.retry(endpoint);
                    tokio::time::sleep(*pause).await;
                }
                _ => {
                    self.metrics.failure(endpoint);
                    return Err(error);
                }
            }
        }
    }

    async fn attempt(&self, endpoint: Endpoint, body: Bytes) -> Result<Bytes, WebhookError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, async {
            let _permit = self
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let mut request = self
                .http
                .post(self.urls.get(endpoint).clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body);
            if let Some(authorization) = &self.authorization {
                request = request.header(AUTHORIZATION, authorization.clone());
            }
            let response = request.send().await.map_err(|e| self.classify(e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(WebhookError::Status(status.as_u16()));
            }
            response.bytes().await.map_err(|e| self.classify(e))
        })
        .await
        .unwrap_or(Err(WebhookError::Timeout(self.timeout)));
        self.metrics
            .observe(endpoint, started.elapsed().as_secs_f64());
        result
    }

    fn classify(&self, error: reqwest::Error) -> WebhookError {
        if error.is_timeout() {
            WebhookError::Timeout(self.timeout)
        } else if error.is_connect() {
            WebhookError::Connect(chain(&error))
        } else {
            WebhookError::Request(chain(&error))
        }
    }
}

/// The error and its causes on one line: reqwest's own message rarely says what went wrong.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
