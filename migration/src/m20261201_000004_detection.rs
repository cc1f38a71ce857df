//! Failure detection: each printer's prediction state (so it survives
//! restarts and any instance can judge the next frame), the per-frame
//! results of a print (the failure-score curve), and the print a printer
//! event belongs to.

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
                    .table(PrinterPredictions::Table)
                    .if_not_exists()
                    .col(integer(PrinterPredictions::PrinterId).primary_key())
                    .col(big_integer(PrinterPredictions::CurrentFrameNum).default(0))
                    .col(big_integer(PrinterPredictions::LifetimeFrameNum).default(0))
                    .col(double(PrinterPredictions::CurrentP).default(0.0))
                    .col(double(PrinterPredictions::EwmMean).default(0.0))
                    .col(double(PrinterPredictions::RollingMeanShort).default(0.0))
                    .col(double(PrinterPredictions::RollingMeanLong).default(0.0))
                    .col(double(PrinterPredictions::NormalizedP).default(0.0))
                    // Bumped by every write: a writer only wins when the
                    // version it read is still there.
                    .col(big_integer(PrinterPredictions::Version).default(0))
                    .col(timestamp_with_time_zone(PrinterPredictions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_printer_predictions_printer_id")
                            .from(PrinterPredictions::Table, PrinterPredictions::PrinterId)
                            .to(Printers::Table, Printers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PrintPredictions::Table)
                    .if_not_exists()
                    .col(pk_auto(PrintPredictions::Id))
                    .col(integer(PrintPredictions::PrintId))
                    .col(double(PrintPredictions::P))
                    .col(double(PrintPredictions::NormalizedP))
                    .col(text(PrintPredictions::Detections))
                    .col(timestamp_with_time_zone(PrintPredictions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_print_predictions_print_id")
                            .from(PrintPredictions::Table, PrintPredictions::PrintId)
                            .to(Prints::Table, Prints::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_print_predictions_print")
                    .table(PrintPredictions::Table)
                    .col(PrintPredictions::PrintId)
                    .col(PrintPredictions::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        if !manager.has_column("printer_events", "print_id").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(PrinterEvents::Table)
                        .add_column(integer_null(PrinterEvents::PrintId))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PrinterEvents::Table)
                    .drop_column(PrinterEvents::PrintId)
                    .to_owned(),
            )
            .await?;
        for t in [
            PrintPredictions::Table.into_iden(),
            PrinterPredictions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Printers {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Prints {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PrinterPredictions {
    Table,
    PrinterId,
    CurrentFrameNum,
    LifetimeFrameNum,
    CurrentP,
    EwmMean,
    RollingMeanShort,
    RollingMeanLong,
    NormalizedP,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PrintPredictions {
    Table,
    Id,
    PrintId,
    P,
    NormalizedP,
    Detections,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PrinterEvents {
    Table,
    PrintId,
}
