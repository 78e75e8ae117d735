mod admin_users;
mod dashboards;
mod home;
mod login;
mod not_found;
mod profile;
mod register;
mod reset_password;

pub use admin_users::UsersAdminPage;
pub use dashboards::{
    AwaitingApproval, CustomerDashboard, DashboardRedirect, ManagementDashboard, WorkerDashboard,
};
pub use home::HomePage;
pub use login::LoginPage;
pub use not_found::NotFound;
pub use profile::ProfilePage;
pub use register::RegisterPage;
pub use reset_password::ResetPasswordPage;
