"""The aiohttp request handlers, one module per resource, and the middleware around them."""
