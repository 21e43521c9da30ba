//! The effective configuration printed back as TOML (`sluice config check`),
//! with every default spelled out and every secret replaced by `"****"`.

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, value};

use crate::model::{Config, ConfigSource, Credential, ProviderKind};
use crate::secret::{MASK, Secret, masked_url};
use crate::units::{format_byte_size, format_duration};

/// Written only from the validated [`Config`], never from the original text,
/// so nothing the user typed (comments included) can carry a secret through.
pub(crate) fn masked_toml(config: &Config) -> String {
    let mut document = DocumentMut::new();

    document["listen"] = value(config.listen.to_string());
    document["data_dir"] = value(config.data_dir.to_string_lossy().into_owned());
    document["client_keys"] = value(config.client_keys.iter().map(|_| MASK).collect::<Array>());
    if let Some(admin_key) = &config.admin_key {
        document["admin_key"] = masked(admin_key);
    }

    let mut accounts = ArrayOfTables::new();
    for account in &config.accounts {
        let mut table = Table::new();
        table["name"] = value(account.name.as_str());
        table["provider"] = value(account.provider.as_str());
        match &account.credential {
            Credential::ApiKey(api_key) => table["api_key"] = masked(api_key),
            Credential::OAuth {
                access_token,
                refresh_token,
                expires_at_ms,
            } => {
                table["access_token"] = masked(access_token);
                if let Some(refresh_token) = refresh_token {
                    table["refresh_token"] = masked(refresh_token);
                }
                if let Some(expires_at_ms) = expires_at_ms {
                    table["expires_at"] = value(*expires_at_ms);
                }
            }
        }
        let options = &account.options;
        match (account.provider, &account.upstream) {
            (ProviderKind::AnthropicCompatible, Some(base)) => {
                table["base_url"] = value(masked_url(base));
                table["auth"] = value(options.auth.as_str());
            }
            (_, Some(upstream)) => table["upstream"] = value(masked_url(upstream)),
            (_, None) => {}
        }
        if let Some(account_id) = &options.account_id {
            table["account_id"] = value(account_id.as_str());
        }
        if let Some(project) = &options.project {
            table["project"] = value(project.as_str());
        }
        if !options.model_map.is_empty() {
            let mut map = InlineTable::new();
            for (from, to) in &options.model_map {
                map.insert(from, to.as_str().into());
            }
            table["model_map"] = value(map);
        }
        table["priority"] = value(i64::from(account.priority));
        table["weight"] = value(i64::from(account.weight));
        table["enabled"] = value(account.enabled);
        accounts.push(table);
    }
    if !accounts.is_empty() {
        document["accounts"] = Item::ArrayOfTables(accounts);
    }

    let endpoints = &config.providers.anthropic;
    let mut anthropic = Table::new();
    anthropic["base_url"] = value(masked_url(&endpoints.base_url));
    anthropic["token_url"] = value(masked_url(&endpoints.token_url));
    anthropic["usage_url"] = value(masked_url(&endpoints.usage_url));
    anthropic["profile_url"] = value(masked_url(&endpoints.profile_url));
    anthropic["authorize_url"] = value(masked_url(&endpoints.authorize_url));
    anthropic["manual_redirect_url"] = value(masked_url(&endpoints.manual_redirect_url));
    anthropic["client_id"] = value(endpoints.client_id.as_str());
    anthropic["chat_default_max_tokens"] = value(i64::from(endpoints.chat_default_max_tokens));
    let mut providers = Table::new();
    providers.set_implicit(true);
    providers["anthropic"] = Item::Table(anthropic);

    let endpoints = &config.providers.codex;
    let mut codex = Table::new();
    codex["base_url"] = value(masked_url(&endpoints.base_url));
    codex["usage_url"] = value(masked_url(&endpoints.usage_url));
    codex["token_url"] = value(masked_url(&endpoints.token_url));
    codex["authorize_url"] = value(masked_url(&endpoints.authorize_url));
    codex["redirect_uri"] = value(masked_url(&endpoints.redirect_uri));
    codex["client_id"] = value(endpoints.client_id.as_str());
    providers["codex"] = Item::Table(codex);

    let endpoints = &config.providers.gemini;
    let mut gemini = Table::new();
    gemini["code_assist_url"] = value(masked_url(&endpoints.code_assist_url));
    gemini["api_url"] = value(masked_url(&endpoints.api_url));
    gemini["token_url"] = value(masked_url(&endpoints.token_url));
    gemini["authorize_url"] = value(masked_url(&endpoints.authorize_url));
    gemini["userinfo_url"] = value(masked_url(&endpoints.userinfo_url));
    gemini["manual_redirect_url"] = value(masked_url(&endpoints.manual_redirect_url));
    gemini["client_id"] = value(endpoints.client_id.as_str());
    // The built-in (public) client secret is left out; one configured instead is masked.
    if !endpoints.has_default_client_secret() {
        gemini["client_secret"] = masked(&endpoints.client_secret);
    }
    providers["gemini"] = Item::Table(gemini);

    let mut openai = Table::new();
    openai["base_url"] = value(masked_url(&config.providers.openai.base_url));
    providers["openai"] = Item::Table(openai);
    document["providers"] = Item::Table(providers);

    let mut limits = Table::new();
    limits["max_request_body"] = value(format_byte_size(config.limits.max_request_body));
    document["limits"] = Item::Table(limits);

    let settings = &config.upstream;
    let mut upstream = Table::new();
    upstream["connect_timeout"] = value(format_duration(settings.connect_timeout));
    upstream["response_timeout"] = value(format_duration(settings.response_timeout));
    upstream["idle_timeout"] = value(format_duration(settings.idle_timeout));
    upstream["pool_idle_timeout"] = value(format_duration(settings.pool_idle_timeout));
    // TOML integers are i64; a larger pool size cannot have come from a file.
    upstream["pool_max_idle_per_host"] =
        value(i64::try_from(settings.pool_max_idle_per_host).unwrap_or(i64::MAX));
    document["upstream"] = Item::Table(upstream);

    let mut retry = Table::new();
    retry["max_attempts"] = value(i64::from(config.retry.max_attempts));
    retry["attempts_per_account"] = value(i64::from(config.retry.attempts_per_account));
    document["retry"] = Item::Table(retry);

    let mut queue = Table::new();
    queue["max_wait"] = value(format_duration(config.queue.max_wait));
    queue["keepalive"] = value(format_duration(config.queue.keepalive));
    document["queue"] = Item::Table(queue);

    let settings = &config.scheduler;
    let mut scheduler = Table::new();
    scheduler["strategy"] = value(settings.strategy.as_str());
    scheduler["switch_threshold"] = value(settings.switch_threshold);
    scheduler["max_in_flight_per_account"] = value(i64::from(settings.max_in_flight_per_account));
    scheduler["max_in_flight_total"] = value(i64::from(settings.max_in_flight_total));
    scheduler["cooldown"] = value(format_duration(settings.cooldown));
    scheduler["max_cooldown"] = value(format_duration(settings.max_cooldown));
    document["scheduler"] = Item::Table(scheduler);

    let mut oauth = Table::new();
    oauth["refresh_margin"] = value(format_duration(config.oauth.refresh_margin));
    oauth["usage_probe_interval"] = value(format_duration(config.oauth.usage_probe_interval));
    document["oauth"] = Item::Table(oauth);

    let mut shutdown = Table::new();
    shutdown["drain"] = value(format_duration(config.shutdown.drain));
    document["shutdown"] = Item::Table(shutdown);

    let mut log = Table::new();
    log["level"] = value(config.log.level.as_str());
    log["requests"] = value(config.log.requests);
    log["retention"] = value(format_duration(config.log.retention));
    document["log"] = Item::Table(log);

    // Only what the file changed: the built-in table is `sluice usage --prices`.
    if !config.prices.overrides().is_empty() {
        let mut prices = Table::new();
        prices.set_implicit(true);
        for (prefix, change) in config.prices.overrides() {
            let mut table = Table::new();
            let fields = [
                ("input", change.input),
                ("output", change.output),
                ("cache_write", change.cache_write),
                ("cache_read", change.cache_read),
            ];
            for (field, price) in fields {
                if let Some(price) = price {
                    table[field] = value(price);
                }
            }
            prices[prefix.as_str()] = Item::Table(table);
        }
        document["prices"] = Item::Table(prices);
    }

    let origin = match &config.source {
        ConfigSource::Default => "built-in defaults".to_owned(),
        // A newline in the path would end the comment and break the TOML.
        ConfigSource::File(path) => path.display().to_string().replace(['\n', '\r'], " "),
    };
    format!(
        "# Effective sluice configuration (from {origin}); secrets are shown as \"{MASK}\".\n{document}"
    )
}

fn masked(_secret: &Secret<String>) -> Item {
    value(MASK)
}
