//! Rate-limit response headers: the subscription ("unified") `anthropic-ratelimit-unified-*` family and the
//! API-key `anthropic-ratelimit-{requests,tokens,…}-{limit,remaining,reset}` family.

/// Utilization at or above which a window reports `allowed_warning`.
pub const WARNING_UTILIZATION: f64 = 0.8;

/// Quota headers attached to every response of an account (or of one reply).
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaHeaders {
    /// Subscription accounts: `anthropic-ratelimit-unified-*`.
    Unified(UnifiedQuota),
    /// API-key accounts: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*`.
    ApiKey(ApiKeyLimits),
}

impl QuotaHeaders {
    /// Unified headers with the given 5-hour / 7-day utilization (fractions) and resets (epoch seconds);
    /// statuses and the representative claim are derived unless set on the returned builder.
    pub fn unified(
        utilization_5h: f64,
        reset_5h_epoch_s: u64,
        utilization_7d: f64,
        reset_7d_epoch_s: u64,
    ) -> UnifiedQuota {
        UnifiedQuota {
            utilization_5h,
            reset_5h: reset_5h_epoch_s,
            utilization_7d,
            reset_7d: reset_7d_epoch_s,
            status: None,
            status_5h: None,
            status_7d: None,
            representative_claim: None,
            overage_status: None,
            fallback_percentage: None,
        }
    }

    /// Empty API-key limits; add families with [`ApiKeyLimits::requests`], [`ApiKeyLimits::tokens`], ….
    pub fn api_key() -> ApiKeyLimits {
        ApiKeyLimits::default()
    }

    /// The header (name, value) pairs.
    pub fn to_headers(&self) -> Vec<(String, String)> {
        match self {
            Self::Unified(u) => u.to_headers(),
            Self::ApiKey(a) => a.to_headers(),
        }
    }
}

/// Subscription quota: two windows, each with a utilization fraction and a reset time.
#[derive(Debug, Clone, PartialEq)]
pub struct UnifiedQuota {
    /// 5-hour window utilization (0.42 = 42 %; may exceed 1).
    pub utilization_5h: f64,
    /// 5-hour window reset, epoch seconds.
    pub reset_5h: u64,
    /// 7-day window utilization.
    pub utilization_7d: f64,
    /// 7-day window reset, epoch seconds.
    pub reset_7d: u64,
    /// Overall status override (`allowed` | `allowed_warning` | `rejected`).
    pub status: Option<String>,
    /// 5-hour status override.
    pub status_5h: Option<String>,
    /// 7-day status override.
    pub status_7d: Option<String>,
    /// Representative claim override (`five_hour` | `seven_day` | …).
    pub representative_claim: Option<String>,
    /// `anthropic-ratelimit-unified-overage-status`, sent only when set.
    pub overage_status: Option<String>,
    /// `anthropic-ratelimit-unified-fallback-percentage`, sent only when set.
    pub fallback_percentage: Option<f64>,
}

/// The status a window with utilization `u` reports.
pub fn window_status(u: f64) -> &'static str {
    if u >= 1.0 {
        "rejected"
    } else if u >= WARNING_UTILIZATION {
        "allowed_warning"
    } else {
        "allowed"
    }
}

fn severity(status: &str) -> u8 {
    match status {
        "rejected" => 2,
        "allowed_warning" => 1,
        _ => 0,
    }
}

/// A utilization fraction as the headers carry it (at most 4 decimals).
pub(crate) fn format_utilization(u: f64) -> String {
    let rounded = (u * 10_000.0).round() / 10_000.0;
    format!("{rounded}")
}

/// Epoch seconds as RFC 3339 (`2025-01-02T03:04:05Z`).
pub(crate) fn rfc3339(epoch_s: u64) -> String {
    i64::try_from(epoch_s)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl UnifiedQuota {
    /// Override the overall status.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }
    /// Override the 5-hour window status.
    pub fn status_5h(mut self, status: impl Into<String>) -> Self {
        self.status_5h = Some(status.into());
        self
    }
    /// Override the 7-day window status.
    pub fn status_7d(mut self, status: impl Into<String>) -> Self {
        self.status_7d = Some(status.into());
        self
    }
    /// Override the representative claim.
    pub fn representative_claim(mut self, claim: impl Into<String>) -> Self {
        self.representative_claim = Some(claim.into());
        self
    }
    /// Send `-unified-overage-status`.
    pub fn overage_status(mut self, status: impl Into<String>) -> Self {
        self.overage_status = Some(status.into());
        self
    }
    /// Send `-unified-fallback-percentage`.
    pub fn fallback_percentage(mut self, fraction: f64) -> Self {
        self.fallback_percentage = Some(fraction);
        self
    }

    fn resolved_5h_status(&self) -> String {
        self.status_5h
            .clone()
            .unwrap_or_else(|| window_status(self.utilization_5h).to_owned())
    }

    fn resolved_7d_status(&self) -> String {
        self.status_7d
            .clone()
            .unwrap_or_else(|| window_status(self.utilization_7d).to_owned())
    }

    /// The representative claim: the set one, else the most constraining window.
    fn resolved_claim(&self) -> String {
        if let Some(claim) = &self.representative_claim {
            return claim.clone();
        }
        let (s5, s7) = (
            severity(&self.resolved_5h_status()),
            severity(&self.resolved_7d_status()),
        );
        let seven_day = s7 > s5 || (s7 == s5 && self.utilization_7d > self.utilization_5h);
        if seven_day { "seven_day" } else { "five_hour" }.to_owned()
    }

    /// The header (name, value) pairs.
    pub fn to_headers(&self) -> Vec<(String, String)> {
        let s5 = self.resolved_5h_status();
        let s7 = self.resolved_7d_status();
        let overall = self.status.clone().unwrap_or_else(|| {
            if severity(&s7) > severity(&s5) {
                s7.clone()
            } else {
                s5.clone()
            }
        });
        let claim = self.resolved_claim();
        let reset = if claim == "seven_day" {
            self.reset_7d
        } else {
            self.reset_5h
        };
        let p = "anthropic-ratelimit-unified-";
        let mut headers = vec![
            (format!("{p}status"), overall),
            (format!("{p}reset"), reset.to_string()),
            (format!("{p}representative-claim"), claim),
            (
                format!("{p}5h-utilization"),
                format_utilization(self.utilization_5h),
            ),
            (format!("{p}5h-reset"), self.reset_5h.to_string()),
            (format!("{p}5h-status"), s5),
            (
                format!("{p}7d-utilization"),
                format_utilization(self.utilization_7d),
            ),
            (format!("{p}7d-reset"), self.reset_7d.to_string()),
            (format!("{p}7d-status"), s7),
        ];
        if let Some(o) = &self.overage_status {
            headers.push((format!("{p}overage-status"), o.clone()));
        }
        if let Some(f) = self.fallback_percentage {
            headers.push((format!("{p}fallback-percentage"), format_utilization(f)));
        }
        headers
    }
}

impl From<UnifiedQuota> for QuotaHeaders {
    fn from(u: UnifiedQuota) -> Self {
        Self::Unified(u)
    }
}

/// One API-key rate-limit family: limit, remaining and reset (epoch seconds, sent as RFC 3339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `-limit`.
    pub limit: u64,
    /// `-remaining`.
    pub remaining: u64,
    /// `-reset`, epoch seconds.
    pub reset_epoch_s: u64,
}

/// API-key rate limits; each family is sent only when set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiKeyLimits {
    /// `anthropic-ratelimit-requests-*`.
    pub requests: Option<RateLimit>,
    /// `anthropic-ratelimit-tokens-*`.
    pub tokens: Option<RateLimit>,
    /// `anthropic-ratelimit-input-tokens-*`.
    pub input_tokens: Option<RateLimit>,
    /// `anthropic-ratelimit-output-tokens-*`.
    pub output_tokens: Option<RateLimit>,
}

impl ApiKeyLimits {
    /// Set the requests family.
    pub fn requests(mut self, limit: u64, remaining: u64, reset_epoch_s: u64) -> Self {
        self.requests = Some(RateLimit {
            limit,
            remaining,
            reset_epoch_s,
        });
        self
    }
    /// Set the tokens family.
    pub fn tokens(mut self, limit: u64, remaining: u64, reset_epoch_s: u64) -> Self {
        self.tokens = Some(RateLimit {
            limit,
            remaining,
            reset_epoch_s,
        });
        self
    }
    /// Set the input-tokens family.
    pub fn input_tokens(mut self, limit: u64, remaining: u64, reset_epoch_s: u64) -> Self {
        self.input_tokens = Some(RateLimit {
            limit,
            remaining,
            reset_epoch_s,
        });
        self
    }
    /// Set the output-tokens family.
    pub fn output_tokens(mut self, limit: u64, remaining: u64, reset_epoch_s: u64) -> Self {
        self.output_tokens = Some(RateLimit {
            limit,
            remaining,
            reset_epoch_s,
        });
        self
    }

    /// The header (name, value) pairs.
    pub fn to_headers(&self) -> Vec<(String, String)> {
        let families = [
            ("requests", self.requests),
            ("tokens", self.tokens),
            ("input-tokens", self.input_tokens),
            ("output-tokens", self.output_tokens),
        ];
        let mut headers = Vec::new();
        for (family, limit) in families {
            if let Some(l) = limit {
                let p = format!("anthropic-ratelimit-{family}-");
                headers.push((format!("{p}limit"), l.limit.to_string()));
                headers.push((format!("{p}remaining"), l.remaining.to_string()));
                headers.push((format!("{p}reset"), rfc3339(l.reset_epoch_s)));
            }
        }
        headers
    }
}

impl From<ApiKeyLimits> for QuotaHeaders {
    fn from(a: ApiKeyLimits) -> Self {
        Self::ApiKey(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
        &h.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("missing {name}"))
            .1
    }

    #[test]
    fn unified_derives_statuses() {
        let h = QuotaHeaders::unified(0.42, 1000, 0.85, 2000).to_headers();
        assert_eq!(get(&h, "anthropic-ratelimit-unified-5h-status"), "allowed");
        assert_eq!(
            get(&h, "anthropic-ratelimit-unified-7d-status"),
            "allowed_warning"
        );
        assert_eq!(
            get(&h, "anthropic-ratelimit-unified-status"),
            "allowed_warning"
        );
        assert_eq!(
            get(&h, "anthropic-ratelimit-unified-representative-claim"),
            "seven_day"
        );
        assert_eq!(get(&h, "anthropic-ratelimit-unified-reset"), "2000");
        assert_eq!(
            get(&h, "anthropic-ratelimit-unified-5h-utilization"),
            "0.42"
        );
        assert_eq!(get(&h, "anthropic-ratelimit-unified-5h-reset"), "1000");
        assert_eq!(h.len(), 9);
    }

    #[test]
    fn unified_overrides() {
        let h = QuotaHeaders::unified(1.0, 1000, 0.1, 2000)
            .status("rejected")
            .overage_status("rejected")
            .to_headers();
        assert_eq!(get(&h, "anthropic-ratelimit-unified-status"), "rejected");
        assert_eq!(get(&h, "anthropic-ratelimit-unified-5h-status"), "rejected");
        assert_eq!(
            get(&h, "anthropic-ratelimit-unified-representative-claim"),
            "five_hour"
        );
        assert_eq!(get(&h, "anthropic-ratelimit-unified-reset"), "1000");
        assert_eq!(
            get(&h, "anthropic-ratelimit-unified-overage-status"),
            "rejected"
        );
    }

    #[test]
    fn api_key_headers_use_rfc3339() {
        let h = QuotaHeaders::api_key()
            .requests(50, 49, 1_700_000_000)
            .tokens(1000, 900, 1_700_000_060)
            .to_headers();
        assert_eq!(get(&h, "anthropic-ratelimit-requests-limit"), "50");
        assert_eq!(get(&h, "anthropic-ratelimit-requests-remaining"), "49");
        assert_eq!(
            get(&h, "anthropic-ratelimit-requests-reset"),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            get(&h, "anthropic-ratelimit-tokens-reset"),
            "2023-11-14T22:14:20Z"
        );
        assert_eq!(h.len(), 6);
    }

    #[test]
    fn utilization_format() {
        assert_eq!(format_utilization(0.123456), "0.1235");
        assert_eq!(format_utilization(1.0), "1");
        assert_eq!(format_utilization(0.0), "0");
    }
}
