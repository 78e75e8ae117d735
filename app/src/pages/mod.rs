mod admin_users;
mod awaiting_approval;
mod charts;
mod close_account;
mod customer;
mod dashboard_redirect;
mod forgot_password;
mod home;
mod imports;
mod login;
mod management;
mod not_found;
mod passkeys;
mod profile;
mod register;
mod replication;
mod reset_password;
mod sale_form;
mod sale_history;
mod sales_table;
mod second_step;
mod two_factor;
mod verify_email;
mod worker;

pub use admin_users::UsersAdminPage;
pub use awaiting_approval::AwaitingApproval;
pub use customer::CustomerDashboard;
pub use dashboard_redirect::DashboardRedirect;
pub use forgot_password::ForgotPasswordPage;
pub use home::HomePage;
pub use imports::{ImportJobPage, ImportsPage};
pub use login::LoginPage;
pub use management::ManagementDashboard;
pub use not_found::NotFound;
pub use profile::ProfilePage;
pub use register::RegisterPage;
pub use reset_password::ResetPasswordPage;
pub use sale_form::{EditSalePage, NewSalePage};
pub use sale_history::{SaleHistoryPage, SaleHistoryPanel};
pub use second_step::SecondStepPage;
pub use two_factor::TwoFactorPage;
pub use verify_email::VerifyEmailPage;
pub use worker::WorkerDashboard;

/// Routes whose code downloads when first needed: with `cargo leptos --split` each
/// page's code is its own WASM chunk (code pages share goes to shared chunks), and the
/// server preloads the chunk of the page it renders. Only the home page, the login page
/// and the redirects stay in the main bundle: every visitor's first page is one of them.
macro_rules! lazy_pages {
    ($($route:ident => $page:ident),* $(,)?) => {$(
        pub struct $route;

        #[leptos_router::lazy_route]
        impl leptos_router::LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> leptos::prelude::AnyView {
                leptos::prelude::IntoAny::into_any($page())
            }
        }
    )*};
}

lazy_pages! {
    CustomerRoute => CustomerDashboard,
    WorkerRoute => WorkerDashboard,
    NewSaleRoute => NewSalePage,
    EditSaleRoute => EditSalePage,
    SaleHistoryRoute => SaleHistoryPage,
    ManagementRoute => ManagementDashboard,
    UsersAdminRoute => UsersAdminPage,
    ProfileRoute => ProfilePage,
    TwoFactorRoute => TwoFactorPage,
    RegisterRoute => RegisterPage,
    ForgotPasswordRoute => ForgotPasswordPage,
    ResetPasswordRoute => ResetPasswordPage,
    VerifyEmailRoute => VerifyEmailPage,
    SecondStepRoute => SecondStepPage,
    AwaitingApprovalRoute => AwaitingApproval,
    ImportsRoute => ImportsPage,
    ImportJobRoute => ImportJobPage,
}
