import uvicorn
from singlewindow.gateway.app import create_app
from singlewindow.gateway.settings import Settings

settings = Settings()
uvicorn.run(
    create_app(settings),
    host=settings.http_host,
    port=settings.http_port,
    log_config=None,
    access_log=False,
    lifespan="on",
    http="httptools",  # C parser: h11, uvicorn's pure-Python fallback, took a third of the CPU
)
