class Account:
    def __init__(self):
        self._balance = None

    def _check_open(self):
        if self._balance is None:
            raise ValueError("account closed")

    def open(self):
        if self._balance is not None:
            raise ValueError("account already open")
        self._balance = 0

    def close(self):
        self._check_open()
        self._balance = None

    def deposit(self, amount):
        self._check_open()
        if amount <= 0:
            raise ValueError("amount must be positive")
        self._balance += amount

    def withdraw(self, amount):
        self._check_open()
        if amount <= 0 or amount > self._balance:
            raise ValueError("invalid amount")
        self._balance -= amount

    def balance(self):
        self._check_open()
        return self._balance
