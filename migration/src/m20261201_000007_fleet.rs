//! The fleet view: each printer's state as its last status says it
//! (`state`, the service's `PrinterState` name) and when its print should
//! end (`finishes_at`), written with the status, so the fleet can be
//! filtered and counted in SQL without parsing every status; and when its
//! agent was last heard (`last_seen_at`, kept when the status is cleared).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            ("state", string_null(Printers::State)),
            (
                "finishes_at",
                timestamp_with_time_zone_null(Printers::FinishesAt),
            ),
            (
                "last_seen_at",
                timestamp_with_time_zone_null(Printers::LastSeenAt),
            ),
        ];
        for (name, column) in columns {
            if !manager.has_column("printers", name).await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(Printers::Table)
                            .add_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Printers::State, Printers::FinishesAt, Printers::LastSeenAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Printers::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Printers {
    Table,
    State,
    FinishesAt,
    LastSeenAt,
}
