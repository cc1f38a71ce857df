//! Print history: whether the agent reported a print failed (so a failed
//! print is told from a cancelled one), and the index that pages a
//! printer's prints newest first at the same cost on every page.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("prints", "failed_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Prints::Table)
                        .add_column(timestamp_with_time_zone_null(Prints::FailedAt))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_prints_printer_started")
                    .table(Prints::Table)
                    .col(Prints::PrinterId)
                    .col(Prints::StartedAt)
                    .col(Prints::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_prints_printer_started")
                    .table(Prints::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Prints::Table)
                    .drop_column(Prints::FailedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Prints {
    Table,
    PrinterId,
    StartedAt,
    Id,
    FailedAt,
}
