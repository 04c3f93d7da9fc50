use workos::organizations::ListOrganizationsParams;
use workos::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("STELE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let workos = Client::builder()
        .api_key(std::env::var("STELE_API_KEY")?)
        .base_url(url)
        .build();

    let page = workos
        .organizations()
        .list_organizations(ListOrganizationsParams {
            limit: Some(10),
            ..Default::default()
        })
        .await?;
    println!(
        "Connected to Stele: {} organizations on the first page",
        page.data.len()
    );
    Ok(())
}
