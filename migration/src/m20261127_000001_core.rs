//! The core tables: users, printers and prints, with their keys and indexes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(pk_auto(Users::Id))
                    .col(text_uniq(Users::Sub))
                    .col(text_null(Users::Email))
                    .col(double(Users::DhBalance).default(0.0))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Printers::Table)
                    .if_not_exists()
                    .col(pk_auto(Printers::Id))
                    .col(integer(Printers::UserId))
                    .col(text(Printers::Name))
                    .col(timestamp_with_time_zone(Printers::CreatedAt))
                    .col(text(Printers::ActionOnFailure).default("PAUSE"))
                    .col(boolean(Printers::WatchingEnabled).default(true))
                    .col(boolean(Printers::ToolsOffOnPause).default(true))
                    .col(boolean(Printers::BedOffOnPause).default(false))
                    .col(double(Printers::RetractOnPause).default(6.5))
                    .col(double(Printers::LiftZOnPause).default(2.5))
                    .col(double(Printers::DetectiveSensitivity).default(1.0))
                    .col(integer(Printers::MinTimelapseSecsOnFinish).default(600))
                    .col(integer(Printers::MinTimelapseSecsOnCancel).default(300))
                    .col(text_uniq(Printers::AuthToken))
                    .col(timestamp_with_time_zone_null(Printers::ArchivedAt))
                    .col(timestamp_with_time_zone_null(Printers::DeletedAt))
                    .col(text_null(Printers::AgentName))
                    .col(text_null(Printers::AgentVersion))
                    .col(json_null(Printers::Status))
                    .col(double_null(Printers::StatusTs))
                    .col(timestamp_with_time_zone_null(Printers::StatusAt))
                    .col(json_null(Printers::AgentSettings))
                    .col(integer_null(Printers::CurrentPrintId))
                    .col(double(Printers::NormalizedP).default(0.0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_printers_user_id")
                            .from(Printers::Table, Printers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_printers_user_id")
                    .table(Printers::Table)
                    .col(Printers::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Prints::Table)
                    .if_not_exists()
                    .col(pk_auto(Prints::Id))
                    .col(integer(Prints::PrinterId))
                    .col(big_integer(Prints::ExtId))
                    .col(text(Prints::Filename))
                    .col(timestamp_with_time_zone(Prints::StartedAt))
                    .col(timestamp_with_time_zone_null(Prints::FinishedAt))
                    .col(timestamp_with_time_zone_null(Prints::CancelledAt))
                    .col(timestamp_with_time_zone_null(Prints::AlertedAt))
                    .col(timestamp_with_time_zone_null(Prints::AlertAcknowledgedAt))
                    .col(timestamp_with_time_zone_null(Prints::AlertMutedAt))
                    .col(timestamp_with_time_zone_null(Prints::PausedAt))
                    .col(timestamp_with_time_zone_null(Prints::UploadedAt))
                    .col(text_null(Prints::VideoUrl))
                    .col(text_null(Prints::TaggedVideoUrl))
                    .col(text_null(Prints::PosterUrl))
                    .col(text_null(Prints::PredictionJsonUrl))
                    .col(text_null(Prints::AlertOverwrite))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_prints_printer_id")
                            .from(Prints::Table, Prints::PrinterId)
                            .to(Printers::Table, Printers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("uq_prints_printer_id_ext_id")
                    .table(Prints::Table)
                    .col(Prints::PrinterId)
                    .col(Prints::ExtId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Prints::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Printers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Sub,
    Email,
    DhBalance,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Printers {
    Table,
    Id,
    UserId,
    Name,
    CreatedAt,
    ActionOnFailure,
    WatchingEnabled,
    ToolsOffOnPause,
    BedOffOnPause,
    RetractOnPause,
    LiftZOnPause,
    DetectiveSensitivity,
    MinTimelapseSecsOnFinish,
    MinTimelapseSecsOnCancel,
    AuthToken,
    ArchivedAt,
    DeletedAt,
    AgentName,
    AgentVersion,
    Status,
    StatusTs,
    StatusAt,
    AgentSettings,
    CurrentPrintId,
    NormalizedP,
}

#[derive(DeriveIden)]
enum Prints {
    Table,
    Id,
    PrinterId,
    ExtId,
    Filename,
    StartedAt,
    FinishedAt,
    CancelledAt,
    AlertedAt,
    AlertAcknowledgedAt,
    AlertMutedAt,
    PausedAt,
    UploadedAt,
    VideoUrl,
    TaggedVideoUrl,
    PosterUrl,
    PredictionJsonUrl,
    AlertOverwrite,
}
