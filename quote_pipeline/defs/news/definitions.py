"""The news domain: news_articles → daily_sentiment, their job, schedule and automation."""

import dagster as dg

from quote_pipeline.defs.automation import derived_tables_sensor
from quote_pipeline.defs.metadata import beta_parameters_accepted
from quote_pipeline.defs.news.assets import daily_sentiment, news_articles
from quote_pipeline.defs.news.jobs import build_refresh_news_job
from quote_pipeline.defs.news.schedules import build_news_schedule
from quote_pipeline.defs.settings import DeploymentSettings


@dg.definitions
def news_definitions() -> dg.Definitions:
    settings = DeploymentSettings.from_env()
    with beta_parameters_accepted():
        return dg.Definitions(
            assets=[news_articles, daily_sentiment],
            jobs=[build_refresh_news_job()],
            schedules=[build_news_schedule(settings.schedules)],
            sensors=[
                derived_tables_sensor(
                    "news_sentiment_automation",
                    [daily_sentiment],
                    "Rebuild daily_sentiment after news_articles changes (declarative "
                    "automation: its eager condition). Calls no API.",
                )
            ],
        )
