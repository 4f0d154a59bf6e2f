"""The catalog: categories and products, their cached view data, and the pages that list them."""
