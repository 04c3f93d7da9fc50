//! Shared application state handed to every handler: the services (built by the
//! composition root, `crate::app`) and the serve configuration.

use std::sync::Arc;

use crate::config::ServeConfig;
use crate::services::activity::ActivityLog;
use crate::services::api_keys::ApiKeyService;
use crate::services::bootstrap::BootstrapService;
use crate::services::events::EventService;
use crate::services::exports::ExportService;
use crate::services::idempotency::IdempotencyService;
use crate::services::jobs::JobService;
use crate::services::log_streams::LogStreamService;
use crate::services::organizations::OrganizationService;
use crate::services::portal::PortalService;
use crate::services::quarantine::QuarantineService;
use crate::services::rate_limits::RateLimiter;
use crate::services::retention::RetentionService;
use crate::services::schemas::SchemaService;
use crate::services::sessions::SessionService;
use crate::services::transparency::TransparencyService;
use crate::services::users::UserService;

#[derive(Clone)]
pub struct AppState(Arc<Services>);

/// Every service, and the configuration the HTTP layer reads (body limit, public URL,
/// session lifetime).
pub struct Services {
    pub config: ServeConfig,
    pub activity: ActivityLog,
    pub api_keys: ApiKeyService,
    pub bootstrap: BootstrapService,
    pub events: EventService,
    pub exports: ExportService,
    pub idempotency: IdempotencyService,
    pub jobs: JobService,
    pub metrics: crate::metrics::Metrics,
    pub log_streams: LogStreamService,
    pub organizations: OrganizationService,
    pub portal: PortalService,
    pub rate_limits: RateLimiter,
    pub quarantine: QuarantineService,
    pub retention: RetentionService,
    pub schemas: SchemaService,
    pub sessions: SessionService,
    pub transparency: TransparencyService,
    pub users: UserService,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}
