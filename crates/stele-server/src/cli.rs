//! What each `stele` subcommand does. `main.rs` only parses arguments and calls in here.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use stele_core::access::{grants_from_names, KeyGrants};
use stele_core::note::NoteVerifier;
use stele_core::timestamp::format_millis;
use tokio::net::TcpListener;

use crate::config::{
    ApiKeysCommand, Cli, Command, GlobalArgs, LogFormat, ServeConfig, UsersCommand,
};
use crate::services::activity::{actions, ActivityContext, ActivityLog, ActivityTarget};
use crate::services::api_keys::ApiKeyService;
use crate::services::bootstrap::ADMIN_USERNAME;
use crate::services::events::EventService;
use crate::services::import::ImportService;
use crate::services::transparency::TreeVerifier;
use crate::services::users::UserService;
use crate::workos_source::WorkosSource;
use crate::{build_state, open_store, serve_with_metrics, SearchIndexing};

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STELE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    init_logging(cli.global.log_format);
    let outcome = match cli.command {
        None => run_server(&cli.global, cli.serve).await,
        Some(Command::Serve(config)) => run_server(&cli.global, config).await,
        Some(Command::Migrate) => migrate(&cli.global).await,
        Some(Command::Verify {
            organization,
            public_keys,
        }) => return verify(&cli.global, organization, &public_keys).await,
        Some(Command::VerifyExport { file, public_keys }) => {
            return verify_export(&file, &public_keys)
        }
        Some(Command::Import { from, api_key }) => import(&cli.global, &from, &api_key).await,
        Some(Command::ImportEvents { organization, file }) => {
            import_events(&cli.global, &organization, &file).await
        }
        Some(Command::ApiKeys(command)) => api_keys(&cli.global, command).await,
        Some(Command::Users(command)) => users(&cli.global, command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stele: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(global: &GlobalArgs, config: ServeConfig) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot listen on {}: {error}; choose another address with --listen or STELE_LISTEN",
            config.listen
        )
    })?;
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(TcpListener::bind(address).await.map_err(|error| {
            anyhow::anyhow!(
                "cannot listen on {address} for metrics: {error}; choose another address with \
                 --metrics-listen or STELE_METRICS_LISTEN"
            )
        })?),
        None => None,
    };
    let store = open_store(
        &global.database_url,
        &global.database,
        config.migrate_on_start,
        SearchIndexing::Background,
    )
    .await?;
    let mut config = config;
    if config.signing_key_file.is_none() {
        config.signing_key_file = Some(default_signing_key_file(global));
    }
    match crate::config::DatabaseLocation::parse(&global.database_url) {
        Ok(crate::config::DatabaseLocation::Sqlite { path, .. }) => {
            // One process: the key file beside the database, created when missing.
            config.link_key_may_generate = true;
            if config.link_signing_key_file.is_none() {
                let dir = path.parent().unwrap_or(std::path::Path::new("."));
                config.link_signing_key_file = Some(dir.join("link-signing-key"));
            }
        }
        _ if config.link_signing_key_file.is_none() => tracing::warn!(
            "the export link signing key is kept in the database, so every backup carries it; \
             give every replica the same --link-signing-key-file (see docs/limits.md)"
        ),
        _ => {}
    }
    let state = build_state(store, config.clone())?;
    let secrets = state
        .bootstrap
        .ensure_initialized(config.api_key.as_deref(), config.admin_password.as_deref())
        .await?;
    if secrets.api_key.is_some() || secrets.admin_password.is_some() {
        let mut out = std::io::stdout().lock();
        write!(
            out,
            "{}",
            first_start_notice(
                secrets.api_key.as_deref(),
                secrets.admin_password.as_deref()
            )
        )?;
        out.flush()?;
    }
    tracing::info!(address = %listener.local_addr()?, database = %global.database_url, "stele is listening");
    if let Some(metrics_listener) = &metrics_listener {
        tracing::info!(address = %metrics_listener.local_addr()?, "serving /metrics without authentication");
    }
    serve_with_metrics(state, listener, metrics_listener, shutdown_signal()).await?;
    tracing::info!("stele stopped");
    Ok(())
}

/// The first-start message, with the secrets starting in one column.
fn first_start_notice(api_key: Option<&str>, admin_password: Option<&str>) -> String {
    let password_label = format!("Dashboard user '{ADMIN_USERNAME}' password:");
    let lines: Vec<(&str, &str)> = [("API key:", api_key), (&password_label, admin_password)]
        .into_iter()
        .filter_map(|(label, secret)| Some((label, secret?)))
        .collect();
    let width = password_label.len() + 2;
    let mut notice =
        String::from("\nStele first start: these secrets are shown only once. Store them now.\n");
    for (label, secret) in lines {
        notice.push_str(&format!("  {label:<width$}{secret}\n"));
    }
    notice.push('\n');
    notice
}

/// The signing key beside the SQLite file, or under `./stele-data` for other databases.
fn default_signing_key_file(global: &GlobalArgs) -> std::path::PathBuf {
    let sqlite_path = match crate::config::DatabaseLocation::parse(&global.database_url) {
        Ok(crate::config::DatabaseLocation::Sqlite { path, .. }) => Some(path),
        _ => None,
    };
    crate::services::transparency::default_key_file(sqlite_path.as_deref())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn migrate(global: &GlobalArgs) -> anyhow::Result<()> {
    let applied = crate::migrate(&global.database_url, &global.database).await?;
    println!("applied {applied} migration(s)");
    Ok(())
}

/// Reads `--public-key` values: verifier keys, or files holding one per line.
fn parse_public_keys(values: &[String]) -> Result<Vec<NoteVerifier>, String> {
    let mut keys = Vec::new();
    for value in values {
        let text = if std::path::Path::new(value).is_file() {
            std::fs::read_to_string(value).map_err(|error| format!("reading {value}: {error}"))?
        } else {
            value.clone()
        };
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
            keys.push(NoteVerifier::parse(line).map_err(|error| format!("{value}: {error}"))?);
        }
    }
    Ok(keys)
}

async fn verify(
    global: &GlobalArgs,
    organization: Option<String>,
    public_keys: &[String],
) -> ExitCode {
    let store = match open_for_command(global, false).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("stele verify: cannot open the database: {error}");
            return ExitCode::from(2);
        }
    };
    // A mistyped organization id must not pass as "0 events verified". A deleted
    // organization's id is not a typo: what it left (kept tree hashes, checkpoints) is
    // checked as in a full run.
    let mut deleted = false;
    if let Some(id) = &organization {
        let known = match store.get_organization(id).await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => store.deleted_organization_ids().await.map(|ids| {
                deleted = ids.contains(id);
                deleted
            }),
            Err(error) => Err(error),
        };
        match known {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("stele verify: no organization {id} in this database");
                return ExitCode::from(2);
            }
            Err(error) => {
                eprintln!("stele verify: {error}");
                return ExitCode::from(2);
            }
        }
    }
    let trusted = match public_keys {
        [] => store
            .list_signing_keys()
            .await
            .map_err(|error| error.to_string())
            .and_then(|keys| {
                keys.iter()
                    .map(|key| {
                        NoteVerifier::parse(&key.verifier_key)
                            .map_err(|error| format!("stored key {}: {error}", key.key_id))
                    })
                    .collect()
            }),
        given => parse_public_keys(given),
    };
    let trusted: Vec<NoteVerifier> = match trusted {
        Ok(keys) => keys,
        Err(error) => {
            eprintln!("stele verify: {error}");
            return ExitCode::from(2);
        }
    };

    eprintln!("checking hash chains");
    let progress =
        Box::new(|checked: u64| show_progress(&format!("chains: {}", count(checked, "event"))));
    let report = match store.verify_log(organization.clone(), progress).await {
        Err(error) => {
            end_progress();
            eprintln!("stele verify: {error}");
            return ExitCode::from(2);
        }
        Ok(report) => report,
    };
    end_progress();
    if let Some((organization, chain_break)) = report.first_break {
        println!("TAMPERED: organization {organization}: {chain_break}");
        return ExitCode::FAILURE;
    }

    eprintln!("checking Merkle trees and signed checkpoints");
    // Deleted organizations' kept tree hashes and checkpoints are checked too.
    let organizations = match organization {
        Some(id) => vec![id],
        None => match (
            store.organization_ids().await,
            store.deleted_organization_ids().await,
        ) {
            (Ok(mut ids), Ok(deleted)) => {
                ids.extend(deleted);
                ids
            }
            (Err(error), _) | (_, Err(error)) => {
                eprintln!("stele verify: {error}");
                return ExitCode::from(2);
            }
        },
    };
    let verifier = TreeVerifier::new(store);
    let mut done = 0u64;
    for id in &organizations {
        let mut progress = |checked: u64| {
            show_progress(&format!("trees: {} ({id})", count(done + checked, "event")));
        };
        match verifier.verify_tree(id, &trusted, &mut progress).await {
            Err(error) => {
                end_progress();
                eprintln!("stele verify: {id}: {error}");
                return ExitCode::from(2);
            }
            Ok(Err(tree_break)) => {
                end_progress();
                println!("TAMPERED: organization {id}: {tree_break}");
                return ExitCode::FAILURE;
            }
            Ok(Ok(events)) => done += events,
        }
    }
    end_progress();
    if deleted {
        println!(
            "OK: deleted organization {} verified (the tree hashes and signed checkpoints it left)",
            organizations.join(", ")
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "OK: {} in {} verified (hash chains, Merkle trees, signed checkpoints)",
        count(report.events, "event"),
        count(report.organizations, "organization")
    );
    ExitCode::SUCCESS
}

/// `1 event`, `2 events`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Progress on stderr: redrawn in place on a terminal, one line per report otherwise, so
/// logs get whole lines.
fn show_progress(line: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Ends an in-place progress line (on a terminal; elsewhere every line already ended).
fn end_progress() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

fn verify_export(file: &std::path::Path, public_keys: &[String]) -> ExitCode {
    let keys = match parse_public_keys(public_keys) {
        Ok(keys) if !keys.is_empty() => keys,
        Ok(_) => {
            eprintln!("stele verify-export: no public key given");
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("stele verify-export: {error}");
            return ExitCode::from(2);
        }
    };
    let reader = match std::fs::File::open(file) {
        Ok(file) => std::io::BufReader::new(file),
        Err(error) => {
            eprintln!("stele verify-export: reading {}: {error}", file.display());
            return ExitCode::from(2);
        }
    };
    match stele_core::proven_jsonl::verify_reader(reader, &keys) {
        Ok(verified) => {
            println!(
                "OK: {} events of {} ({}) are in its log of {} events, signed by key {}",
                verified.events,
                verified.origin,
                verified.label,
                verified.tree_size,
                verified.key_id
            );
            ExitCode::SUCCESS
        }
        Err(problem) => {
            println!("INVALID: {}: {problem}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// Opens the store for a one-off command, which keeps no search index up to date (the
/// server indexes what a command appends; see `SearchIndexing::Off`).
async fn open_for_command(
    global: &GlobalArgs,
    migrate: bool,
) -> Result<std::sync::Arc<dyn stele_store::Store>, crate::OpenStoreError> {
    open_store(
        &global.database_url,
        &global.database,
        migrate,
        SearchIndexing::Off,
    )
    .await
}

fn import_service(store: std::sync::Arc<dyn stele_store::Store>) -> ImportService {
    ImportService::new(std::sync::Arc::clone(&store), EventService::new(store))
}

async fn import(global: &GlobalArgs, from: &str, api_key: &str) -> anyhow::Result<()> {
    // Like `migrate`, an import may set up a new database: it is how one starts.
    let store = open_for_command(global, true).await?;
    let source = WorkosSource::new(from, api_key)?;
    eprintln!("reading {from}");
    let snapshot = source.snapshot(&mut |step| eprintln!("  {step}")).await?;
    let importer = import_service(store);
    let plan = importer.plan(&snapshot).await?;
    if plan.is_empty() {
        eprintln!("nothing to import: this database already holds everything from {from}");
        return Ok(());
    }
    eprintln!(
        "importing {} organizations, {} retention periods, {} actions with new versions",
        plan.create_organizations.len(),
        plan.set_retention.len(),
        plan.add_versions.len()
    );
    importer
        .apply(plan, &format!("import from {from}"), &mut |step| {
            eprintln!("  {step}")
        })
        .await?;
    eprintln!("import done");
    Ok(())
}

async fn import_events(
    global: &GlobalArgs,
    organization: &str,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    // The organization must already be in the database: opening without migrating never
    // creates one in the wrong directory.
    let store = open_for_command(global, false).await?;
    let reader = std::fs::File::open(file)
        .map_err(|error| anyhow::anyhow!("reading {}: {error}", file.display()))?;
    eprintln!("validating {}", file.display());
    let outcome = import_service(store)
        .import_events(
            organization,
            std::io::BufReader::new(reader),
            &mut |stored| show_progress(&format!("stored {}", count(stored, "row"))),
        )
        .await;
    end_progress();
    let outcome = outcome?;
    match outcome {
        Ok(outcome) => {
            eprintln!(
                "imported {} into {organization}; {} imported before and skipped",
                count(outcome.appended, "event"),
                count(outcome.skipped, "row"),
            );
            Ok(())
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("{}:{}: {}", file.display(), problem.line, problem.message);
            }
            anyhow::bail!(
                "{} in {}; nothing was imported",
                count(problems.len() as u64, "bad row"),
                file.display()
            )
        }
    }
}

async fn api_keys(global: &GlobalArgs, command: ApiKeysCommand) -> anyhow::Result<()> {
    let store = open_for_command(global, false).await?;
    let keys = ApiKeyService::new(Arc::clone(&store));
    let activity = ActivityLog::new(store);
    match command {
        ApiKeysCommand::Create {
            name,
            scopes,
            organizations,
        } => {
            let grants = grants_from_names(&scopes, &organizations)
                .map_err(|message| anyhow::anyhow!(message))?;
            let (key, secret) = keys.create(&name, None, grants).await.map_err(user_error)?;
            activity
                .record(
                    &ActivityContext::command_line(),
                    actions::API_KEY_CREATED,
                    vec![ActivityTarget::api_key(&key)],
                )
                .await?;
            println!(
                "created API key {} ({}) with {}. Its secret is shown only once:\n{secret}",
                key.id,
                key.name,
                describe_grants(&key.grants)
            );
        }
        ApiKeysCommand::List => {
            for key in keys.list().await? {
                let status = match key.revoked_at {
                    Some(at) => format!("revoked {}", format_millis(at)),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\tcreated {}\t{status}\t{}",
                    key.id,
                    key.name,
                    format_millis(key.created_at),
                    describe_grants(&key.grants)
                );
            }
        }
        ApiKeysCommand::Revoke { id } => {
            if keys.revoke(&id).await? {
                activity
                    .record(
                        &ActivityContext::command_line(),
                        actions::API_KEY_REVOKED,
                        vec![ActivityTarget::new("api_key", &id)],
                    )
                    .await?;
                println!("revoked {id}");
            } else {
                anyhow::bail!("no active API key with id {id}");
            }
        }
    }
    Ok(())
}

async fn users(global: &GlobalArgs, command: UsersCommand) -> anyhow::Result<()> {
    let store = open_for_command(global, false).await?;
    let users = UserService::new(Arc::clone(&store));
    let activity = ActivityLog::new(store);
    match command {
        UsersCommand::Create { username, password } => {
            let (user, generated) = users
                .create(&username, password.as_deref())
                .await
                .map_err(user_error)?;
            activity
                .record(
                    &ActivityContext::command_line(),
                    actions::USER_CREATED,
                    vec![ActivityTarget::named(
                        "user",
                        user.id.as_ref(),
                        &user.username,
                    )],
                )
                .await?;
            match generated {
                Some(password) => println!(
                    "created dashboard user {} ({}). Its password is shown only once:\n{password}",
                    user.username, user.id
                ),
                None => println!("created dashboard user {} ({})", user.username, user.id),
            }
        }
        UsersCommand::SetPassword { username } => {
            let password = new_password()?;
            users
                .set_password(&username, &password)
                .await
                .map_err(user_error)?;
            activity
                .record(
                    &ActivityContext::command_line(),
                    actions::USER_PASSWORD_CHANGED,
                    vec![ActivityTarget::named("user", &username, &username)],
                )
                .await?;
            println!("set a new password for {username}; its sessions have ended");
        }
    }
    Ok(())
}

/// The new password from STELE_NEW_PASSWORD, or typed twice (unechoed) on a terminal.
fn new_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("STELE_NEW_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "no new password: set STELE_NEW_PASSWORD, or run this on a terminal to type it"
        );
    }
    let first = rpassword::prompt_password("New password: ")?;
    let second = rpassword::prompt_password("Repeat it: ")?;
    if first != second {
        anyhow::bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// A key's scopes and organizations as `stele api-keys list` shows them.
fn describe_grants(grants: &KeyGrants) -> String {
    let scopes = format!("scopes: {}", grants.scope_names().join(","));
    if grants.is_restricted() {
        format!(
            "{scopes}; organizations: {}",
            grants.organizations.join(",")
        )
    } else {
        format!("{scopes}; organizations: all")
    }
}

/// A service error as the CLI states it: the field messages of a validation error, joined.
fn user_error(error: crate::services::ServiceError) -> anyhow::Error {
    match error {
        crate::services::ServiceError::InvalidRequest(errors) => anyhow::anyhow!(
            "{}",
            errors
                .into_iter()
                .map(|error| error.message)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_secrets_start_in_one_column() {
        let notice = first_start_notice(Some("sk_key"), Some("pass_word"));
        let key_line = notice
            .lines()
            .find(|line| line.contains("API key"))
            .expect("key");
        let password_line = notice
            .lines()
            .find(|line| line.contains("password"))
            .expect("pw");
        assert_eq!(
            key_line.find("sk_key"),
            password_line.find("pass_word"),
            "{notice}"
        );
        assert!(!first_start_notice(None, Some("p")).contains("API key"));
    }

    #[test]
    fn counts_are_pluralized() {
        assert_eq!(count(1, "event"), "1 event");
        assert_eq!(count(0, "organization"), "0 organizations");
        assert_eq!(count(2, "event"), "2 events");
    }
}
